// Package-internal: the `microsocket` meter of the MeterProvider given to an
// instrument*() function (the global one by default), after refusing any
// option it does not know.
import { type Meter, metrics } from "npm:@opentelemetry/api@^1.9.0";

/** Returns the meter; throws a TypeError naming unknown options. */
export function meterOf(
  options: { meterProvider?: { getMeter(name: string): object } },
  caller: string,
): Meter {
  const unknown = Object.keys(options).filter((key) => key !== "meterProvider");
  if (unknown.length > 0) {
    throw new TypeError(`Unknown option ${unknown.join(", ")} for ${caller}`);
  }
  return (options.meterProvider ?? metrics.getMeterProvider())
    .getMeter("microsocket") as Meter;
}
