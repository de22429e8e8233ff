// Package sensors holds the small types that every sensor driver shares.
//
// Each driver family lives in its own sub-package (sim, bme280, ds18b20,
// gpio, ads1x15). Drivers are synchronous: a Read call talks to the device
// and returns what it measured. The agent owns the schedule, the timeouts
// and the retries.
package sensors

// Reading is one metric measured by one read of a device.
type Reading struct {
	// Metric is the name reported to clients, e.g. "temperature".
	Metric string
	// Value is in Unit.
	Value float64
	// Unit is the unit as shown to people, e.g. "°C", "%", "hPa".
	Unit string
}
