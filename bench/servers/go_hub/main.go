// The Go standard-library hub baseline: the way a Go chat server is usually
// written (the gorilla/websocket chat example's shape, on plain TCP). Each
// connection has a reader goroutine, a writer goroutine and a buffered
// channel of outbound chunks; one hub goroutine owns the set of clients and
// broadcasts every read's complete lines (one shared copy) to every other
// client with a non-blocking channel send. A client whose channel is full
// is dropped (its connection closed), as in the gorilla example. The writer
// drains everything queued into one bufio write and one Flush (coalescing).
//
// Usage: go_hub fanout|chat|echo   (bench/run.ts builds it with `go build`)
// fanout: every line from a client is delivered to every other client.
// chat:   fanout, plus "* <id> joined" / "* <id> left" sent to every other
//
//	client when a client connects / disconnects.
//
// echo:   every 4-byte big-endian length-prefixed frame is sent back.
// Prints "listening <port>" once ready and "stats {...}" on SIGTERM.
// Standard library only (Go 1.19).
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	// Outbound chunks that may wait per client (gorilla's chat uses 256).
	sendQueue = 256
	minRead   = 4 * 1024
	maxRead   = 64 * 1024
	bufSize   = 4 * 1024
)

var mode string

// Calls made, reported on SIGTERM.
var reads, writes atomic.Int64

type client struct {
	id   uint64
	conn *net.TCPConn
	send chan []byte
}

type message struct {
	from *client
	data []byte
}

type hub struct {
	register   chan *client
	unregister chan *client
	broadcast  chan message
}

func newHub() *hub {
	return &hub{
		register:   make(chan *client, 256),
		unregister: make(chan *client, 256),
		broadcast:  make(chan message, 256),
	}
}

// run owns the client set; nothing else touches it.
func (h *hub) run() {
	clients := make(map[*client]struct{})
	var dropped []*client
	deliver := func(from *client, data []byte) {
		for c := range clients {
			if c == from {
				continue
			}
			select {
			case c.send <- data:
			default:
				// Full: drop the client (gorilla's policy). Closing the conn
				// also unblocks its writer if it is stuck in a write.
				delete(clients, c)
				close(c.send)
				c.conn.Close()
				dropped = append(dropped, c)
			}
		}
	}
	announce := func(c *client, what string) {
		if mode == "chat" {
			deliver(c, []byte("* "+strconv.FormatUint(c.id, 10)+" "+what+"\n"))
		}
	}
	for {
		select {
		case c := <-h.register:
			clients[c] = struct{}{}
			announce(c, "joined")
		case c := <-h.unregister:
			if _, ok := clients[c]; ok {
				delete(clients, c)
				close(c.send)
				announce(c, "left")
			}
		case m := <-h.broadcast:
			deliver(m.from, m.data)
		}
		// Announce drops after the loop over clients (no nesting).
		for len(dropped) > 0 {
			c := dropped[0]
			dropped = dropped[1:]
			announce(c, "left")
		}
	}
}

// countingConn counts the write calls bufio makes on the socket.
type countingConn struct{ conn *net.TCPConn }

func (w countingConn) Write(p []byte) (int, error) {
	writes.Add(1)
	return w.conn.Write(p)
}

// writeLoop sends whatever is queued, coalesced: everything waiting in the
// channel goes into one bufio write sequence and one Flush.
func (c *client) writeLoop() {
	w := bufio.NewWriterSize(countingConn{c.conn}, bufSize)
	defer c.conn.Close()
	for data := range c.send {
		if _, err := w.Write(data); err != nil {
			return
		}
		for n := len(c.send); n > 0; n-- {
			more, ok := <-c.send
			if !ok {
				break
			}
			if _, err := w.Write(more); err != nil {
				return
			}
		}
		if err := w.Flush(); err != nil {
			return
		}
	}
}

// readLoop reads the client's bytes and hands complete lines to the hub
// (fanout, chat) or frames back to the client's own writer (echo).
func (c *client) readLoop(h *hub) {
	defer func() {
		if mode == "echo" {
			close(c.send)
		} else {
			h.unregister <- c
		}
		c.conn.Close()
	}()
	buf := make([]byte, minRead)
	var carry []byte
	for {
		n, err := c.conn.Read(buf)
		if n > 0 {
			reads.Add(1)
			chunk := buf[:n]
			if mode == "echo" {
				data := chunk
				if carry != nil {
					data = append(carry, chunk...)
				}
				end := completeFrames(data)
				if end > 0 {
					out := make([]byte, end)
					copy(out, data[:end])
					c.send <- out
				}
				carry = append([]byte(nil), data[end:]...)
				if len(carry) == 0 {
					carry = nil
				}
			} else {
				last := bytes.LastIndexByte(chunk, '\n')
				if last < 0 {
					carry = append(carry, chunk...)
				} else {
					// One fresh copy of the complete lines, shared by every receiver.
					lines := make([]byte, 0, len(carry)+last+1)
					lines = append(lines, carry...)
					lines = append(lines, chunk[:last+1]...)
					carry = append([]byte(nil), chunk[last+1:]...)
					if len(carry) == 0 {
						carry = nil
					}
					h.broadcast <- message{from: c, data: lines}
				}
			}
			if n == len(buf) && len(buf) < maxRead {
				buf = make([]byte, len(buf)*2)
			}
		}
		if err != nil {
			return
		}
	}
}

// completeFrames returns the end offset of the last complete frame.
func completeFrames(b []byte) int {
	pos := 0
	for pos+4 <= len(b) {
		size := int(b[pos])<<24 | int(b[pos+1])<<16 | int(b[pos+2])<<8 | int(b[pos+3])
		if pos+4+size > len(b) {
			break
		}
		pos += 4 + size
	}
	return pos
}

func main() {
	if len(os.Args) < 2 || (os.Args[1] != "fanout" && os.Args[1] != "chat" && os.Args[1] != "echo") {
		fmt.Fprintln(os.Stderr, "usage: go_hub fanout|chat|echo")
		os.Exit(2)
	}
	mode = os.Args[1]

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM)
	go func() {
		<-signals
		stats, _ := json.Marshal(map[string]int64{"reads": reads.Load(), "writes": writes.Load()})
		fmt.Printf("stats %s\n", stats)
		os.Exit(0)
	}()

	listener, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("listening %d\n", listener.Addr().(*net.TCPAddr).Port)
	h := newHub()
	go h.run()
	var next uint64
	for {
		conn, err := listener.AcceptTCP()
		if err != nil {
			// EMFILE and friends: back off and keep accepting.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		conn.SetNoDelay(true) // Go's default already; said for symmetry
		next++
		c := &client{id: next, conn: conn, send: make(chan []byte, sendQueue)}
		if mode != "echo" {
			h.register <- c
		}
		go c.writeLoop()
		go c.readLoop(h)
	}
}
