// An OpenTelemetry MeterProvider for tests: records the instruments made,
// runs the batch callbacks on collect() (what an SDK does, without one),
// and keeps what synchronous histograms record.

export type Observation = {
  name: string;
  value: number;
  attributes: Record<string, unknown>;
};

/** What a synchronous histogram was created with, and what it recorded. */
export type RecordedHistogram = {
  options: Record<string, unknown>;
  values: number[];
};

export class TestMeterProvider {
  readonly instruments = new Map<object, string>();
  readonly callbacks = new Set<(observer: unknown) => void>();
  readonly histograms = new Map<string, RecordedHistogram>();
  getMeter(_name: string) {
    const instrument = (name: string) => {
      const handle = { name };
      this.instruments.set(handle, name);
      return handle;
    };
    return {
      createObservableGauge: instrument,
      createObservableCounter: instrument,
      createHistogram: (
        name: string,
        options: Record<string, unknown> = {},
      ) => {
        const recorded: RecordedHistogram = { options, values: [] };
        this.histograms.set(name, recorded);
        return { record: (value: number) => void recorded.values.push(value) };
      },
      addBatchObservableCallback: (cb: (o: unknown) => void) =>
        void this.callbacks.add(cb),
      removeBatchObservableCallback: (cb: (o: unknown) => void) =>
        void this.callbacks.delete(cb),
    };
  }
  collect(): Observation[] {
    const out: Observation[] = [];
    const observer = {
      observe: (
        handle: object,
        value: number,
        attributes: Record<string, unknown> = {},
      ) => out.push({ name: this.instruments.get(handle)!, value, attributes }),
    };
    for (const callback of this.callbacks) callback(observer);
    return out;
  }
}

/** The value observed for `name` with (at least) `attributes`. */
export function find(
  observations: Observation[],
  name: string,
  attributes: Record<string, unknown> = {},
): number | undefined {
  return observations.find((o) =>
    o.name === name &&
    Object.entries(attributes).every(([k, v]) => o.attributes[k] === v)
  )?.value;
}
