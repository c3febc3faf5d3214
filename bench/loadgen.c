// The raw load generator: the same workloads, wire formats and JSON-lines
// protocol as bench/loadgen.ts, written in C on epoll so that it costs the
// machine much less per delivery than any server under test (one shared read
// buffer, one read() per ready socket, no promises). bench/run.ts compiles it
// with `cc -O2` when a C compiler exists and falls back to loadgen.ts if not.
//
// Usage: loadgen '<config json>'  (flat JSON of numbers and one string,
// e.g. {"workload":"fanout","port":4000,"receivers":100,...}; see loadgen.ts)

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define RECORD 64
// Flood lines may be longer than fan-out records (1 KB by default).
#define MAX_RECORD 2048
#define ECHO_PAYLOAD 64
#define ECHO_FRAME (4 + ECHO_PAYLOAD)
#define STALL_US 5000000.0
#define READ_BUF (256 * 1024)

static unsigned char rbuf[READ_BUF];
static double start_us;
static const char *config_text;

// ------------------------------------------------------------------ helpers

// A ratio that stays valid JSON (no nan/inf) when the denominator is 0.
static double per(double a, double b) { return b > 0 ? a / b : 0; }

static double mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

// Microseconds since this process started: fits the 13-digit field.
static double now_us(void) { return mono_us() - start_us; }

static double cpu_seconds(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec +
         u.ru_stime.tv_usec / 1e6;
}

static double config_number(const char *key, double fallback) {
  char pattern[64];
  snprintf(pattern, sizeof pattern, "\"%s\":", key);
  const char *at = strstr(config_text, pattern);
  if (!at) return fallback;
  at += strlen(pattern);
  if (strncmp(at, "true", 4) == 0) return 1;
  if (strncmp(at, "false", 5) == 0) return 0;
  return strtod(at, NULL);
}

static void config_string(const char *key, char *out, size_t size) {
  char pattern[64];
  snprintf(pattern, sizeof pattern, "\"%s\":\"", key);
  const char *at = strstr(config_text, pattern);
  out[0] = 0;
  if (!at) return;
  at += strlen(pattern);
  size_t i = 0;
  while (at[i] && at[i] != '"' && i + 1 < size) {
    out[i] = at[i];
    i++;
  }
  out[i] = 0;
}

static void write_digits(unsigned char *p, int width, uint64_t value) {
  for (int i = width - 1; i >= 0; i--) {
    p[i] = '0' + value % 10;
    value /= 10;
  }
}

static uint64_t read_digits(const unsigned char *p, int width) {
  uint64_t value = 0;
  for (int i = 0; i < width; i++) value = value * 10 + (p[i] - '0');
  return value;
}

static int controlled;

static void checkpoint(const char *name, const char *extra) {
  printf("{\"type\":\"checkpoint\",\"name\":\"%s\"%s}\n", name, extra ? extra : "");
  fflush(stdout);
  if (!controlled) return;
  char c;
  while (read(0, &c, 1) == 1 && c != '\n') {
  }
}

static void mark(void) {
  printf("{\"type\":\"mark\",\"name\":\"measured\"}\n");
  fflush(stdout);
}

static void fail(const char *workload, const char *message) {
  printf("{\"type\":\"result\",\"workload\":\"%s\",\"error\":\"%s\"}\n", workload, message);
  fflush(stdout);
  exit(0);
}

static int connect_to(int port, int nonblocking) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  struct sockaddr_in addr = {0};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
    close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (nonblocking) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

// Writes everything, waiting for POLLOUT if the socket is full.
static int write_all(int fd, const unsigned char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w > 0) {
      p += w;
      n -= w;
    } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
      struct pollfd pfd = {fd, POLLOUT, 0};
      poll(&pfd, 1, 100);
    } else
      return -1;
  }
  return 0;
}

// Log-linear latency histogram in µs, the same buckets as loadgen.ts.
#define HBUCKETS (1024 + 22 * 128)
static double hist[HBUCKETS];
static double hist_count, hist_max;

static void hist_record(double us) {
  if (us < 0) us = 0;
  if (us > 2147483647.0) us = 2147483647.0;
  uint32_t v = (uint32_t)us;
  int index;
  if (v < 1024)
    index = v;
  else {
    int e = 31 - __builtin_clz(v);
    index = 1024 + (e - 10) * 128 + ((v >> (e - 7)) & 127);
  }
  hist[index]++;
  hist_count++;
  if (v > hist_max) hist_max = v;
}

static double hist_percentile(double p) {
  if (hist_count == 0) return 0;
  double rank = p / 100 * hist_count;
  if (rank < 1) rank = 1;
  double seen = 0;
  for (int i = 0; i < HBUCKETS; i++) {
    seen += hist[i];
    if (seen >= rank) {
      if (i < 1024) return i;
      int e = 10 + (i - 1024) / 128;
      int sub = (i - 1024) % 128;
      return (128 + sub + 0.5) * (double)(1u << (e - 7));
    }
  }
  return hist_max;
}

// ------------------------------------------------------------------ fan-out

typedef struct {
  int fd;
  int counted;
  int closed;
  int synced;
  const char *ended;
  uint64_t count, next_seq, gaps, corrupt;
  double last_at;
  unsigned char partial[MAX_RECORD];
  int partial_len;
  uint64_t round;
} Receiver;

// Record size of the running workload: RECORD for fan-out, the line size
// for flood.
static int record_len = RECORD;

static uint64_t delivered, reads, synced_count;

// Window bookkeeping: counts reading receivers that have `wait_target`.
static uint64_t wait_target = UINT64_MAX, wait_round, reached;

static void mark_reached(Receiver *r) {
  if (r->round == wait_round) return;
  r->round = wait_round;
  reached++;
}

static void start_wait(Receiver *recv, int nrecv, uint64_t target) {
  wait_round++;
  reached = 0;
  wait_target = target;
  for (int i = 0; i < nrecv; i++)
    if (recv[i].closed || recv[i].count >= target) mark_reached(&recv[i]);
}

static void fan_record(Receiver *r, const unsigned char *b, double at) {
  if (b[record_len - 1] != '\n') {
    r->corrupt++;
    return;
  }
  if (b[0] == 'M') {
    uint64_t seq = read_digits(b + 15, 10);
    if (seq != r->next_seq) r->gaps++;
    r->next_seq = seq + 1;
    r->count++;
    if (r->counted) {
      delivered++;
      hist_record(at - (double)read_digits(b + 1, 13));
    }
  } else if (b[0] == 'S') {
    if (!r->synced) {
      r->synced = 1;
      if (r->counted) synced_count++;
    }
  } else
    r->corrupt++;
}

static void fan_consume(Receiver *r, const unsigned char *buf, size_t n, double at) {
  size_t pos = 0;
  if (r->partial_len > 0) {
    size_t take = record_len - r->partial_len;
    if (take > n) take = n;
    memcpy(r->partial + r->partial_len, buf, take);
    r->partial_len += take;
    pos = take;
    if (r->partial_len == record_len) {
      fan_record(r, r->partial, at);
      r->partial_len = 0;
    }
  }
  while (pos + record_len <= n) {
    fan_record(r, buf + pos, at);
    pos += record_len;
  }
  if (pos < n) {
    memcpy(r->partial, buf + pos, n - pos);
    r->partial_len = n - pos;
  }
}

// Reads once from a ready receiver; returns 0 when it ended.
static size_t read_size = READ_BUF;

static int fan_read(Receiver *r, int finishing) {
  ssize_t n = read(r->fd, rbuf, read_size);
  if (n > 0) {
    double at = now_us();
    reads++;
    fan_consume(r, rbuf, n, at);
    r->last_at = at;
    if (r->counted && r->count >= wait_target) mark_reached(r);
    return 1;
  }
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 1;
  r->ended = n == 0 ? "eof" : (finishing ? "closed" : (errno == ECONNRESET ? "error: ConnectionReset" : "error"));
  r->closed = 1;
  if (r->counted && wait_target != UINT64_MAX) mark_reached(r);
  return 0;
}

// Stuck receivers: read what they were owed until the server ends them,
// they stay quiet for a second, or 5 s pass.
static void drain_stuck(Receiver *stuck, int nstuck) {
  if (nstuck <= 0) return;
  struct epoll_event events[1024];
  int sep = epoll_create1(0);
  for (int i = 0; i < nstuck; i++) {
    stuck[i].last_at = now_us();
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &stuck[i]};
    epoll_ctl(sep, EPOLL_CTL_ADD, stuck[i].fd, &ev);
  }
  double stuck_deadline = now_us() + 5e6;
  while (now_us() < stuck_deadline) {
    int n = epoll_wait(sep, events, 1024, 100);
    for (int i = 0; i < n; i++) {
      Receiver *r = events[i].data.ptr;
      if (!fan_read(r, 0)) epoll_ctl(sep, EPOLL_CTL_DEL, r->fd, NULL);
    }
    int quiet = 1;
    double t = now_us();
    for (int i = 0; i < nstuck; i++)
      if (!stuck[i].closed && t - stuck[i].last_at < 1e6) quiet = 0;
    if (quiet) break;
  }
  close(sep);
}

static void run_fanout(void) {
  int port = config_number("port", 0);
  int nrecv = config_number("receivers", 10);
  int nstuck = config_number("stuck", 0);
  double duration_us = config_number("durationMs", 1000) * 1000;
  // No delivery for this long ends the run as stalled.
  double fanout_stall_us = config_number("stallMs", STALL_US / 1000) * 1000;
  uint64_t max_messages = config_number("maxMessages", 1e9);
  uint64_t window = config_number("window", 256);
  int batch = config_number("batch", 1);
  if (batch < 1) batch = 1;
  int accumulate_us = config_number("accumulateUs", 0);

  Receiver *stuck = calloc(nstuck > 0 ? nstuck : 1, sizeof(Receiver));
  Receiver *recv = calloc(nrecv, sizeof(Receiver));
  for (int i = 0; i < nstuck; i++) {
    stuck[i].fd = connect_to(port, 1);
    if (stuck[i].fd < 0) fail("fanout", "connect failed");
    stuck[i].ended = "open";
  }
  // The sender connects before the receivers so that receivers can be
  // synced in batches: a batch's connections are known accepted once each
  // has an S record, and the server's accept queue never overflows (an
  // overflow costs a connection seconds of SYN-ACK retries).
  int sender = connect_to(port, 0);
  if (sender < 0) fail("fanout", "connect failed");
  int connect_batch = config_number("connectBatch", 128);
  if (connect_batch < 1) connect_batch = 1;

  unsigned char template[RECORD];
  memset(template, 'x', RECORD);
  template[0] = 'M';
  template[14] = ' ';
  template[RECORD - 1] = '\n';
  unsigned char *batch_bytes = malloc((size_t)RECORD * batch);
  for (int i = 0; i < batch; i++) memcpy(batch_bytes + i * RECORD, template, RECORD);
  unsigned char sync_record[RECORD];
  memcpy(sync_record, template, RECORD);
  sync_record[0] = 'S';

  struct epoll_event events[1024];
  int ep = epoll_create1(0);
  int connected = 0;
  while (connected < nrecv) {
    int end = connected + connect_batch < nrecv ? connected + connect_batch : nrecv;
    for (int i = connected; i < end; i++) {
      recv[i].fd = connect_to(port, 1);
      if (recv[i].fd < 0) fail("fanout", "connect failed");
      recv[i].counted = 1;
      recv[i].ended = "open";
      struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &recv[i]};
      epoll_ctl(ep, EPOLL_CTL_ADD, recv[i].fd, &ev);
    }
    connected = end;
    // Sync: S records every 50 ms until every reading receiver has one.
    double sync_deadline = now_us() + 15e6, next_sync = 0;
    while (synced_count < (uint64_t)connected) {
      double t = now_us();
      if (t > sync_deadline) {
        char message[120];
        snprintf(message, sizeof message, "sync timed out (%lu of %d receivers synced)",
                 (unsigned long)synced_count, connected);
        fail("fanout", message);
      }
      if (t >= next_sync) {
        write_digits(sync_record + 1, 13, (uint64_t)t);
        if (write_all(sender, sync_record, RECORD) < 0) fail("fanout", "sender write failed");
        next_sync = t + 50000;
      }
      int n = epoll_wait(ep, events, 1024, 5);
      for (int i = 0; i < n; i++) fan_read(events[i].data.ptr, 0);
    }
  }
  checkpoint("synced", NULL);
  // Sender goes non-blocking: a full socket must never stop us reading.
  fcntl(sender, F_SETFL, fcntl(sender, F_GETFL) | O_NONBLOCK);

  double cpu0 = cpu_seconds();
  uint64_t reads0 = reads;
  double t0 = now_us(), deadline = t0 + duration_us, next_progress = t0 + 250000;
  uint64_t seq = 0, confirmed = 0;
  uint64_t half = window / 2 ? window / 2 : 1;
  // Pending sender bytes after a short write.
  size_t pending_off = 0, pending_len = 0;
  int sending = 1, stalled = 0;
  double last_progress = t0;
  uint64_t last_delivered = 0;

  while (1) {
    double t = now_us();
    if (sending && (seq >= max_messages || t >= deadline)) sending = 0;
    // Flush a short write first.
    if (pending_len > 0) {
      ssize_t w = write(sender, batch_bytes + pending_off, pending_len);
      if (w > 0) {
        pending_off += w;
        pending_len -= w;
      } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
        stalled = 1;
        break;
      }
    }
    if (sending && pending_len == 0) {
      // Fill the window, `batch` messages per write.
      if (seq - confirmed >= window) {
        if (wait_target == UINT64_MAX) start_wait(recv, nrecv, seq - window + half);
        if (reached >= (uint64_t)nrecv) {
          confirmed = wait_target;
          wait_target = UINT64_MAX;
        }
      }
      while (seq - confirmed < window && seq < max_messages && pending_len == 0) {
        uint64_t count = batch;
        if (count > max_messages - seq) count = max_messages - seq;
        if (count > confirmed + window - seq) count = confirmed + window - seq;
        uint64_t ts = (uint64_t)now_us();
        for (uint64_t i = 0; i < count; i++) {
          write_digits(batch_bytes + i * RECORD + 1, 13, ts);
          write_digits(batch_bytes + i * RECORD + 15, 10, seq + i);
        }
        size_t len = count * RECORD;
        ssize_t w = write(sender, batch_bytes, len);
        if (w < 0) {
          if (errno == EAGAIN || errno == EINTR) break;
          stalled = 1;
          break;
        }
        seq += count;
        if ((size_t)w < len) {
          pending_off = w;
          pending_len = len - w;
        }
      }
    }
    if (!sending && pending_len == 0) {
      // Drain: wait until every reader has everything.
      if (wait_target != seq) start_wait(recv, nrecv, seq);
      if (reached >= (uint64_t)nrecv) break;
    }
    int n = epoll_wait(ep, events, 1024, 1);
    uint64_t before = delivered;
    for (int i = 0; i < n; i++) fan_read(events[i].data.ptr, 0);
    // Reads that return only a message or two cost the load generator as
    // much as the server's writes cost it; let data pile up a little
    // (≤ ~0.15 ms, which the latency figures include) so each read takes more.
    if (accumulate_us > 0 && n > 0 && delivered - before < (uint64_t)n * 4) usleep(accumulate_us);
    t = now_us();
    if (delivered != last_delivered) {
      last_delivered = delivered;
      last_progress = t;
    } else if (t - last_progress > fanout_stall_us) {
      stalled = 1;
      break;
    }
    if (t >= next_progress) {
      printf("{\"type\":\"progress\",\"elapsedMs\":%.1f,\"delivered\":%lu,\"rate\":%.0f}\n",
             (t - t0) / 1000, (unsigned long)delivered, per(delivered, (t - t0) / 1e6));
      fflush(stdout);
      next_progress = t + 250000;
    }
  }
  double cpu = cpu_seconds() - cpu0;
  mark();
  uint64_t sent = seq;
  double send_ms = 0;  // not tracked separately
  double last = t0;
  uint64_t gaps = 0, corrupt = 0, closed_early = 0;
  for (int i = 0; i < nrecv; i++) {
    if (recv[i].last_at > last) last = recv[i].last_at;
    gaps += recv[i].gaps;
    corrupt += recv[i].corrupt;
    if (recv[i].closed) closed_early++;
  }
  double elapsed_ms = (last - t0) / 1000;
  (void)send_ms;

  drain_stuck(stuck, nstuck);

  printf("{\"type\":\"result\",\"workload\":\"fanout\",\"receivers\":%d,\"stuck\":%d,\"sent\":%lu,"
         "\"delivered\":%lu,\"expected\":%lu,\"lost\":%ld,\"gaps\":%lu,\"corrupt\":%lu,"
         "\"closedEarly\":%lu,\"stalled\":%s,\"elapsedMs\":%.3f,\"rate\":%.1f,\"reads\":%lu,"
         "\"p50Us\":%.1f,\"p99Us\":%.1f,\"maxUs\":%.0f,\"loadgenCpu\":%.4f,\"stuckReport\":[",
         nrecv, nstuck, (unsigned long)sent, (unsigned long)delivered,
         (unsigned long)(sent * nrecv), (long)(sent * nrecv - delivered), (unsigned long)gaps,
         (unsigned long)corrupt, (unsigned long)closed_early, stalled ? "true" : "false",
         elapsed_ms, per(delivered, elapsed_ms / 1000), (unsigned long)(reads - reads0),
         hist_percentile(50), hist_percentile(99), hist_max, per(cpu, elapsed_ms / 1000));
  for (int i = 0; i < nstuck; i++) {
    printf("%s{\"received\":%lu,\"owed\":%lu,\"endedBy\":\"%s\",\"gaps\":%lu}", i ? "," : "",
           (unsigned long)stuck[i].count, (unsigned long)sent, stuck[i].ended,
           (unsigned long)stuck[i].gaps);
  }
  printf("]}\n");
  fflush(stdout);
}

// ------------------------------------------------------------------ flood

typedef struct {
  int fd;
  unsigned char *out;
  int per_write;
  uint64_t nlines;
  double t0;
  uint64_t seq;  // lines handed to the kernel (atomic)
  int done;      // atomic
  int error;
  double done_at;
} FloodSender;

static void *flood_send(void *arg) {
  FloodSender *fs = arg;
  uint64_t seq = 0;
  while (seq < fs->nlines) {
    uint64_t count = fs->nlines - seq < (uint64_t)fs->per_write ? fs->nlines - seq : (uint64_t)fs->per_write;
    uint64_t ts = (uint64_t)now_us();
    for (uint64_t i = 0; i < count; i++) {
      write_digits(fs->out + i * record_len + 1, 13, ts);
      write_digits(fs->out + i * record_len + 15, 10, seq + i);
    }
    if (write_all(fs->fd, fs->out, count * record_len) < 0) {
      fs->error = 1;
      break;
    }
    seq += count;
    __atomic_store_n(&fs->seq, seq, __ATOMIC_RELEASE);
  }
  fs->done_at = now_us();
  __atomic_store_n(&fs->done, 1, __ATOMIC_RELEASE);
  return NULL;
}

// Issue 9 §1: 1 sender writes `lines` lines of `lineBytes` bytes as fast as
// TCP lets it (no window, no pacing) to a room of `receivers` that read as
// fast as they can and `stuck` that never read. Reports what each healthy
// receiver got (all, in order?) and how the stuck ones ended.
static void run_flood(void) {
  int port = config_number("port", 0);
  int nrecv = config_number("receivers", 20);
  int nstuck = config_number("stuck", 0);
  uint64_t nlines = config_number("lines", 20000);
  record_len = config_number("lineBytes", 1024);
  double stall_us = config_number("stallMs", 20000) * 1000;
  // Bytes per read() of a healthy receiver: an application's read buffer.
  read_size = config_number("readBytes", READ_BUF);
  if (read_size < 1 || read_size > READ_BUF) read_size = READ_BUF;
  if (record_len < 32 || record_len > MAX_RECORD) fail("flood", "lineBytes must be 32..2048");

  Receiver *stuck = calloc(nstuck > 0 ? nstuck : 1, sizeof(Receiver));
  Receiver *recv = calloc(nrecv, sizeof(Receiver));
  for (int i = 0; i < nstuck; i++) {
    stuck[i].fd = connect_to(port, 1);
    if (stuck[i].fd < 0) fail("flood", "connect failed");
    stuck[i].ended = "open";
  }
  int ep = epoll_create1(0);
  for (int i = 0; i < nrecv; i++) {
    recv[i].fd = connect_to(port, 1);
    if (recv[i].fd < 0) fail("flood", "connect failed");
    recv[i].counted = 1;
    recv[i].ended = "open";
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &recv[i]};
    epoll_ctl(ep, EPOLL_CTL_ADD, recv[i].fd, &ev);
  }
  int sender = connect_to(port, 0);
  if (sender < 0) fail("flood", "connect failed");

  // One write is up to 64 KB of whole lines.
  int per_write = 65536 / record_len;
  unsigned char *out = malloc((size_t)record_len * per_write);
  memset(out, 'x', (size_t)record_len * per_write);
  for (int i = 0; i < per_write; i++) {
    unsigned char *line = out + (size_t)i * record_len;
    line[0] = 'M';
    line[14] = ' ';
    line[record_len - 1] = '\n';
  }
  unsigned char *sync_record = malloc(record_len);
  memcpy(sync_record, out, record_len);
  sync_record[0] = 'S';

  struct epoll_event events[1024];
  double sync_deadline = now_us() + 15e6, next_sync = 0;
  while (synced_count < (uint64_t)nrecv) {
    double t = now_us();
    if (t > sync_deadline) fail("flood", "sync timed out");
    if (t >= next_sync) {
      write_digits(sync_record + 1, 13, (uint64_t)t);
      if (write_all(sender, sync_record, record_len) < 0) fail("flood", "sender write failed");
      next_sync = t + 50000;
    }
    int n = epoll_wait(ep, events, 1024, 5);
    for (int i = 0; i < n; i++) fan_read(events[i].data.ptr, 0);
  }
  checkpoint("synced", NULL);
  // The sender runs on its own thread with blocking writes, so it writes as
  // fast as TCP lets it whatever the receiving loop is doing.
  FloodSender fs = {.fd = sender, .out = out, .per_write = per_write, .nlines = nlines};
  pthread_t thread;
  double cpu0 = cpu_seconds();
  double t0 = now_us(), next_progress = t0 + 250000, last_progress = t0;
  fs.t0 = t0;
  if (pthread_create(&thread, NULL, flood_send, &fs) != 0) fail("flood", "pthread_create failed");
  uint64_t last_delivered = delivered, last_sent = 0;
  int stalled = 0;
  while (1) {
    uint64_t sent_now = __atomic_load_n(&fs.seq, __ATOMIC_ACQUIRE);
    if (__atomic_load_n(&fs.done, __ATOMIC_ACQUIRE)) {
      int done = 1;
      for (int i = 0; i < nrecv && done; i++)
        if (!recv[i].closed && recv[i].count < sent_now) done = 0;
      if (done) break;
    }
    int n = epoll_wait(ep, events, 1024, 5);
    for (int i = 0; i < n; i++) fan_read(events[i].data.ptr, 0);
    double t = now_us();
    if (delivered != last_delivered || sent_now != last_sent) {
      last_delivered = delivered;
      last_sent = sent_now;
      last_progress = t;
    } else if (t - last_progress > stall_us) {
      stalled = 1;
      break;
    }
    if (t >= next_progress) {
      printf("{\"type\":\"progress\",\"elapsedMs\":%.1f,\"delivered\":%lu,\"rate\":%.0f}\n",
             (t - t0) / 1000, (unsigned long)delivered, per(delivered, (t - t0) / 1e6));
      fflush(stdout);
      next_progress = t + 250000;
    }
  }
  if (stalled) {
    // Unblock the sender thread: its peer may never read again.
    shutdown(sender, SHUT_RDWR);
  }
  pthread_join(thread, NULL);
  uint64_t seq = fs.seq;
  int sender_error = fs.error;
  uint64_t sender_blocked = 0;
  double send_done_at = fs.done_at;
  double cpu = cpu_seconds() - cpu0;
  mark();
  double last = t0;
  uint64_t gaps = 0, corrupt = 0, closed_early = 0, complete = 0;
  for (int i = 0; i < nrecv; i++) {
    if (recv[i].last_at > last) last = recv[i].last_at;
    gaps += recv[i].gaps;
    corrupt += recv[i].corrupt;
    if (recv[i].closed) closed_early++;
    if (recv[i].count == nlines && recv[i].gaps == 0 && !recv[i].closed) complete++;
  }
  double elapsed_ms = (last - t0) / 1000;
  double send_ms = ((send_done_at > 0 ? send_done_at : now_us()) - t0) / 1000;
  drain_stuck(stuck, nstuck);
  uint64_t expected = nlines * nrecv;
  printf("{\"type\":\"result\",\"workload\":\"flood\",\"receivers\":%d,\"stuck\":%d,\"lines\":%lu,"
         "\"lineBytes\":%d,\"sent\":%lu,\"senderError\":%s,\"senderBlocked\":%lu,\"delivered\":%lu,"
         "\"expected\":%lu,\"lost\":%ld,\"complete\":%lu,\"gaps\":%lu,\"corrupt\":%lu,"
         "\"closedEarly\":%lu,\"stalled\":%s,\"elapsedMs\":%.3f,\"sendMs\":%.3f,\"rate\":%.1f,"
         "\"p50Us\":%.1f,\"p99Us\":%.1f,\"maxUs\":%.0f,\"loadgenCpu\":%.4f,\"stuckReport\":[",
         nrecv, nstuck, (unsigned long)nlines, record_len, (unsigned long)seq,
         sender_error ? "true" : "false", (unsigned long)sender_blocked, (unsigned long)delivered,
         (unsigned long)expected, (long)(expected - delivered), (unsigned long)complete,
         (unsigned long)gaps, (unsigned long)corrupt, (unsigned long)closed_early,
         stalled ? "true" : "false", elapsed_ms, send_ms, per(delivered, elapsed_ms / 1000),
         hist_percentile(50), hist_percentile(99), hist_max, per(cpu, elapsed_ms / 1000));
  for (int i = 0; i < nstuck; i++) {
    printf("%s{\"received\":%lu,\"owed\":%lu,\"endedBy\":\"%s\",\"gaps\":%lu}", i ? "," : "",
           (unsigned long)stuck[i].count, (unsigned long)seq, stuck[i].ended,
           (unsigned long)stuck[i].gaps);
  }
  printf("]}\n");
  fflush(stdout);
}

// ------------------------------------------------------------------ waves

// Issue 9 §2: one server process, `waves` consecutive waves of `clients`
// clients. A wave: the clients connect one after another (the server
// announces each join to the room, "* <id> joined"), one long-lived sender
// sends `lines` 64-byte lines (at most `window` ahead of the wave's slowest
// client), every client reads them all, then all close (the server
// announces each leave). Lines here are split on '\n', since announcements
// have no fixed size.

typedef struct {
  int fd;
  int closed;
  uint64_t count, next_seq, gaps, corrupt, joins, leaves;
  unsigned char partial[256];
  int partial_len;
} WaveConn;

static void wave_line(WaveConn *c, const unsigned char *line, size_t len, double at) {
  if (len == RECORD && line[0] == 'M') {
    uint64_t seq = read_digits(line + 15, 10);
    if (seq != c->next_seq) c->gaps++;
    c->next_seq = seq + 1;
    c->count++;
    delivered++;
    hist_record(at - (double)read_digits(line + 1, 13));
  } else if (len >= 6 && line[0] == '*') {
    if (len >= 7 && memcmp(line + len - 7, "joined\n", 7) == 0)
      c->joins++;
    else if (memcmp(line + len - 5, "left\n", 5) == 0)
      c->leaves++;
    else
      c->corrupt++;
  } else
    c->corrupt++;
}

// Reads once; returns 0 when the connection ended.
static int wave_read(WaveConn *c) {
  ssize_t n = read(c->fd, rbuf, sizeof rbuf);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 1;
  if (n <= 0) {
    c->closed = 1;
    return 0;
  }
  double at = now_us();
  size_t pos = 0;
  while (pos < (size_t)n) {
    unsigned char *nl = memchr(rbuf + pos, '\n', n - pos);
    if (!nl) {
      size_t rest = n - pos;
      if (c->partial_len + rest > sizeof c->partial) {
        c->corrupt++;
        c->partial_len = 0;
      } else {
        memcpy(c->partial + c->partial_len, rbuf + pos, rest);
        c->partial_len += rest;
      }
      break;
    }
    size_t len = nl - (rbuf + pos) + 1;
    if (c->partial_len > 0) {
      if (c->partial_len + len > sizeof c->partial) {
        c->corrupt++;
      } else {
        memcpy(c->partial + c->partial_len, rbuf + pos, len);
        wave_line(c, c->partial, c->partial_len + len, at);
      }
      c->partial_len = 0;
    } else
      wave_line(c, rbuf + pos, len, at);
    pos += len;
  }
  return 1;
}

static void wave_poll(int ep, int timeout_ms) {
  struct epoll_event events[1024];
  int n = epoll_wait(ep, events, 1024, timeout_ms);
  for (int i = 0; i < n; i++) {
    WaveConn *c = events[i].data.ptr;
    if (!wave_read(c)) epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  }
}

static void run_waves(void) {
  int port = config_number("port", 0);
  int nwaves = config_number("waves", 3);
  int nclients = config_number("clients", 1000);
  uint64_t nlines = config_number("lines", 1000);
  uint64_t window = config_number("window", 32);
  double stall_us = config_number("stallMs", 30000) * 1000;
  int connect_batch = config_number("connectBatch", 0);
  int connect_pause_us = config_number("connectPauseUs", 0);
  if (nwaves > 16) nwaves = 16;
  WaveConn *clients = calloc(nclients, sizeof(WaveConn));
  WaveConn sender = {0};
  int ep = epoll_create1(0);
  sender.fd = connect_to(port, 0);
  if (sender.fd < 0) fail("waves", "connect failed");
  checkpoint("connected", NULL);
  fcntl(sender.fd, F_SETFL, fcntl(sender.fd, F_GETFL) | O_NONBLOCK);
  struct epoll_event sev = {.events = EPOLLIN, .data.ptr = &sender};
  epoll_ctl(ep, EPOLL_CTL_ADD, sender.fd, &sev);

  unsigned char record[RECORD];
  memset(record, 'x', RECORD);
  record[0] = 'M';
  record[14] = ' ';
  record[RECORD - 1] = '\n';

  double rates[16], connect_ms[16], send_ms[16], leave_ms[16];
  uint64_t got[16], notices[16];
  uint64_t gaps = 0, corrupt = 0, total_delivered = 0;
  double cpu0 = cpu_seconds(), t_first = now_us();
  const char *error = NULL;
  int done_waves = 0;
  char message[160];
  for (int w = 0; w < nwaves && !error; w++) {
    memset(clients, 0, sizeof(WaveConn) * nclients);
    uint64_t delivered0 = delivered;
    double t0 = now_us(), last_progress = t0;
    // Join: connect all in a burst (the kernel completes the handshakes; the
    // server accepts from its backlog), then read the announcements.
    for (int i = 0; i < nclients; i++) {
      clients[i].fd = connect_to(port, 1);
      if (clients[i].fd < 0) {
        snprintf(message, sizeof message, "wave %d: connect %d failed (%s)", w + 1, i, strerror(errno));
        error = message;
        break;
      }
      struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &clients[i]};
      epoll_ctl(ep, EPOLL_CTL_ADD, clients[i].fd, &ev);
      if (connect_batch > 0 && (i + 1) % connect_batch == 0) {
        if (connect_pause_us > 0) usleep(connect_pause_us);
        wave_poll(ep, 0);
      }
    }
    if (error) break;
    // Every client is in the room once the sender has seen its join.
    uint64_t joins_wanted = (uint64_t)(w + 1) * nclients, seen = sender.joins;
    while (sender.joins < joins_wanted) {
      wave_poll(ep, 5);
      double t = now_us();
      if (sender.joins != seen) {
        seen = sender.joins;
        last_progress = t;
      } else if (t - last_progress > stall_us) {
        snprintf(message, sizeof message, "wave %d: %lu of %d joins announced, then nothing", w + 1,
                 (unsigned long)(sender.joins - (joins_wanted - nclients)), nclients);
        error = message;
        break;
      }
    }
    if (error) break;
    double t_joined = now_us();
    // Send, at most `window` lines ahead of the slowest client.
    uint64_t seq = 0, confirmed = 0, last_delivered = delivered;
    uint64_t half = window / 2 ? window / 2 : 1;
    last_progress = t_joined;
    while (1) {
      if (seq - confirmed >= window || seq >= nlines) {
        uint64_t low = UINT64_MAX;
        for (int i = 0; i < nclients; i++)
          if (!clients[i].closed && clients[i].count < low) low = clients[i].count;
        if (seq >= nlines && low >= nlines) break;
        // Refill half a window at a time, as the fan-out does, so lines
        // reach the server together rather than one per slowest read.
        if (low >= confirmed + half) confirmed = low;
      }
      while (seq < nlines && seq - confirmed < window) {
        write_digits(record + 1, 13, (uint64_t)now_us());
        write_digits(record + 15, 10, seq);
        if (write_all(sender.fd, record, RECORD) < 0) {
          error = "sender write failed";
          break;
        }
        seq++;
      }
      if (error) break;
      wave_poll(ep, 1);
      double t = now_us();
      if (delivered != last_delivered) {
        last_delivered = delivered;
        last_progress = t;
      } else if (t - last_progress > stall_us) {
        snprintf(message, sizeof message, "wave %d: deliveries stalled at %lu", w + 1,
                 (unsigned long)(delivered - delivered0));
        error = message;
        break;
      }
    }
    if (error) break;
    double t_sent = now_us();
    got[w] = delivered - delivered0;
    notices[w] = 0;
    for (int i = 0; i < nclients; i++) {
      gaps += clients[i].gaps;
      corrupt += clients[i].corrupt;
      notices[w] += clients[i].joins + clients[i].leaves;
      close(clients[i].fd);  // also leaves the epoll set
    }
    // Leave: done once the sender has seen every leave.
    uint64_t leaves_wanted = (uint64_t)(w + 1) * nclients;
    seen = sender.leaves;
    last_progress = t_sent;
    while (sender.leaves < leaves_wanted) {
      wave_poll(ep, 5);
      double t = now_us();
      if (sender.leaves != seen) {
        seen = sender.leaves;
        last_progress = t;
      } else if (t - last_progress > stall_us) {
        snprintf(message, sizeof message, "wave %d: %lu of %d leaves announced, then nothing", w + 1,
                 (unsigned long)(sender.leaves - (leaves_wanted - nclients)), nclients);
        error = message;
        break;
      }
    }
    if (error) break;
    double t_left = now_us();
    connect_ms[w] = (t_joined - t0) / 1000;
    send_ms[w] = (t_sent - t_joined) / 1000;
    leave_ms[w] = (t_left - t_sent) / 1000;
    rates[w] = per(got[w], (t_left - t0) / 1e6);
    total_delivered += got[w];
    done_waves++;
    printf("{\"type\":\"wave\",\"wave\":%d,\"delivered\":%lu,\"rate\":%.1f,\"connectMs\":%.3f,"
           "\"sendMs\":%.3f,\"leaveMs\":%.3f}\n",
           w + 1, (unsigned long)got[w], rates[w], connect_ms[w], send_ms[w], leave_ms[w]);
    fflush(stdout);
  }
  double elapsed = (now_us() - t_first) / 1e6;
  double cpu = cpu_seconds() - cpu0;
  mark();
  if (error && done_waves == 0) fail("waves", error);
  printf("{\"type\":\"result\",\"workload\":\"waves\",\"waves\":%d,\"completed\":%d,\"clients\":%d,"
         "\"lines\":%lu,\"window\":%lu,\"delivered\":%lu,\"expected\":%lu,\"lost\":%ld,\"gaps\":%lu,"
         "\"corrupt\":%lu,\"rate\":%.1f,\"p50Us\":%.1f,\"p99Us\":%.1f,\"maxUs\":%.0f,"
         "\"loadgenCpu\":%.4f,%s%s%s\"waveReport\":[",
         nwaves, done_waves, nclients, (unsigned long)nlines, (unsigned long)window,
         (unsigned long)total_delivered, (unsigned long)((uint64_t)done_waves * nclients * nlines),
         (long)((uint64_t)done_waves * nclients * nlines - total_delivered), (unsigned long)gaps,
         (unsigned long)corrupt, per(total_delivered, elapsed), hist_percentile(50),
         hist_percentile(99), hist_max, per(cpu, elapsed), error ? "\"waveError\":\"" : "",
         error ? error : "", error ? "\"," : "");
  for (int w = 0; w < done_waves; w++) {
    printf("%s{\"wave\":%d,\"delivered\":%lu,\"notices\":%lu,\"rate\":%.1f,\"connectMs\":%.3f,"
           "\"sendMs\":%.3f,\"leaveMs\":%.3f}",
           w ? "," : "", w + 1, (unsigned long)got[w], (unsigned long)notices[w], rates[w],
           connect_ms[w], send_ms[w], leave_ms[w]);
  }
  printf("]}\n");
  fflush(stdout);
}

// ------------------------------------------------------------------ echo

typedef struct {
  int fd;
  int outstanding;
  unsigned char partial[ECHO_FRAME];
  int partial_len;
} EchoConn;

static void run_echo(void) {
  int port = config_number("port", 0);
  int nconn = config_number("connections", 50);
  int inflight = config_number("inflight", 16);
  double duration_us = config_number("durationMs", 1000) * 1000;
  EchoConn *conns = calloc(nconn, sizeof(EchoConn));
  unsigned char *scratch = malloc((size_t)ECHO_FRAME * inflight);
  memset(scratch, 'x', (size_t)ECHO_FRAME * inflight);
  for (int i = 0; i < inflight; i++) {
    unsigned char *f = scratch + i * ECHO_FRAME;
    f[0] = f[1] = f[2] = 0;
    f[3] = ECHO_PAYLOAD;
  }
  int ep = epoll_create1(0);
  for (int i = 0; i < nconn; i++) {
    conns[i].fd = connect_to(port, 1);
    if (conns[i].fd < 0) fail("echo", "connect failed");
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &conns[i]};
    epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev);
  }
  checkpoint("connected", NULL);
  double cpu0 = cpu_seconds();
  double t0 = now_us(), deadline = t0 + duration_us, next_progress = t0 + 250000, last = t0;
  uint64_t frames = 0, corrupt = 0, errors = 0;
  int active = nconn;
  for (int i = 0; i < nconn; i++) {
    uint64_t ts = (uint64_t)now_us();
    for (int k = 0; k < inflight; k++) write_digits(scratch + k * ECHO_FRAME + 4, 13, ts);
    if (write_all(conns[i].fd, scratch, (size_t)ECHO_FRAME * inflight) < 0) fail("echo", "write failed");
    conns[i].outstanding = inflight;
  }
  struct epoll_event events[1024];
  double last_progress = t0;
  while (active > 0) {
    int n = epoll_wait(ep, events, 1024, 100);
    double t = now_us();
    for (int e = 0; e < n; e++) {
      EchoConn *c = events[e].data.ptr;
      ssize_t got = read(c->fd, rbuf, sizeof rbuf);
      if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (got <= 0) {
        errors++;
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        c->outstanding = 0;
        active--;
        continue;
      }
      double at = now_us();
      int complete = 0;
      size_t pos = 0;
      if (c->partial_len > 0) {
        size_t take = ECHO_FRAME - c->partial_len;
        if (take > (size_t)got) take = got;
        memcpy(c->partial + c->partial_len, rbuf, take);
        c->partial_len += take;
        pos = take;
        if (c->partial_len == ECHO_FRAME) {
          if (c->partial[0] || c->partial[1] || c->partial[2] || c->partial[3] != ECHO_PAYLOAD) corrupt++;
          hist_record(at - (double)read_digits(c->partial + 4, 13));
          complete++;
          c->partial_len = 0;
        }
      }
      while (pos + ECHO_FRAME <= (size_t)got) {
        unsigned char *f = rbuf + pos;
        if (f[0] || f[1] || f[2] || f[3] != ECHO_PAYLOAD) corrupt++;
        hist_record(at - (double)read_digits(f + 4, 13));
        complete++;
        pos += ECHO_FRAME;
      }
      if (pos < (size_t)got) {
        memcpy(c->partial, rbuf + pos, got - pos);
        c->partial_len = got - pos;
      }
      if (complete == 0) continue;
      frames += complete;
      last = at;
      last_progress = at;
      if (at < deadline) {
        uint64_t ts = (uint64_t)at;
        for (int k = 0; k < complete; k++) write_digits(scratch + k * ECHO_FRAME + 4, 13, ts);
        if (write_all(c->fd, scratch, (size_t)ECHO_FRAME * complete) < 0) {
          errors++;
          epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
          active--;
        }
      } else {
        c->outstanding -= complete;
        if (c->outstanding <= 0) {
          epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
          active--;
        }
      }
    }
    if (t - last_progress > STALL_US) {
      errors += active;
      break;
    }
    if (t >= next_progress) {
      printf("{\"type\":\"progress\",\"elapsedMs\":%.1f,\"delivered\":%lu,\"rate\":%.0f}\n",
             (t - t0) / 1000, (unsigned long)frames, per(frames, (t - t0) / 1e6));
      fflush(stdout);
      next_progress = t + 250000;
    }
  }
  double cpu = cpu_seconds() - cpu0;
  mark();
  double elapsed_ms = (last - t0) / 1000;
  printf("{\"type\":\"result\",\"workload\":\"echo\",\"connections\":%d,\"inflight\":%d,"
         "\"frames\":%lu,\"corrupt\":%lu,\"errors\":%lu,\"elapsedMs\":%.3f,\"rate\":%.1f,"
         "\"p50Us\":%.1f,\"p99Us\":%.1f,\"maxUs\":%.0f,\"loadgenCpu\":%.4f}\n",
         nconn, inflight, (unsigned long)frames, (unsigned long)corrupt, (unsigned long)errors,
         elapsed_ms, per(frames, elapsed_ms / 1000), hist_percentile(50), hist_percentile(99),
         hist_max, per(cpu, elapsed_ms / 1000));
  fflush(stdout);
}

// ------------------------------------------------------------------ idle

static void run_idle(void) {
  int port = config_number("port", 0);
  int nconn = config_number("connections", 1000);
  int concurrency = config_number("concurrency", 128);
  int *fds = calloc(nconn, sizeof(int));
  unsigned char frame[ECHO_FRAME];
  memset(frame, 'x', sizeof frame);
  frame[0] = frame[1] = frame[2] = 0;
  frame[3] = ECHO_PAYLOAD;
  write_digits(frame + 4, 13, 0);
  double t0 = now_us(), next_progress = t0 + 250000;
  int opened = 0;
  char message[160];
  // Batches of `concurrency`: connect, send one frame each, await each echo.
  for (int base = 0; base < nconn; base += concurrency) {
    int end = base + concurrency < nconn ? base + concurrency : nconn;
    for (int i = base; i < end; i++) {
      fds[i] = connect_to(port, 0);
      if (fds[i] < 0) {
        snprintf(message, sizeof message, "after %d connections: connect failed (%s)", opened, strerror(errno));
        fail("idle", message);
      }
      struct timeval tv = {10, 0};
      setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      if (write_all(fds[i], frame, sizeof frame) < 0) fail("idle", "write failed");
    }
    for (int i = base; i < end; i++) {
      size_t got = 0;
      while (got < ECHO_FRAME) {
        ssize_t n = read(fds[i], rbuf + got, ECHO_FRAME - got);
        if (n <= 0) {
          snprintf(message, sizeof message, "after %d connections: %s", opened,
                   n == 0 ? "closed by server" : strerror(errno));
          fail("idle", message);
        }
        got += n;
      }
      opened++;
    }
    double t = now_us();
    if (t >= next_progress) {
      printf("{\"type\":\"progress\",\"elapsedMs\":%.1f,\"delivered\":%d}\n", (t - t0) / 1000, opened);
      fflush(stdout);
      next_progress = t + 250000;
    }
  }
  double accept_ms = (now_us() - t0) / 1000;
  char extra[64];
  snprintf(extra, sizeof extra, ",\"acceptMs\":%.3f", accept_ms);
  checkpoint("ready", extra);
  for (int i = 0; i < nconn; i++) close(fds[i]);
  printf("{\"type\":\"result\",\"workload\":\"idle\",\"connections\":%d,\"opened\":%d,\"acceptMs\":%.3f}\n",
         nconn, opened, accept_ms);
  fflush(stdout);
}

int main(int argc, char **argv) {
  // A write to a connection the server closed must fail, not kill us.
  signal(SIGPIPE, SIG_IGN);
  start_us = mono_us();
  config_text = argc > 1 ? argv[1] : "{}";
  controlled = (int)config_number("controlled", 0);
  char workload[32];
  config_string("workload", workload, sizeof workload);
  if (strcmp(workload, "fanout") == 0)
    run_fanout();
  else if (strcmp(workload, "echo") == 0)
    run_echo();
  else if (strcmp(workload, "idle") == 0)
    run_idle();
  else if (strcmp(workload, "flood") == 0)
    run_flood();
  else if (strcmp(workload, "waves") == 0)
    run_waves();
  else
    fail(workload, "unknown workload");
  return 0;
}
