// Package gpioin reads a GPIO digital input: a door contact, a limit
// switch, a machine's "running" relay.
//
// The pin's edges are watched by a goroutine the Dev owns, with debounce,
// so a change between two reads is neither missed nor reported twice: Read
// returns the debounced level and how many changes happened since the
// previous Read, and Changes signals a change as soon as it is stable, so
// the owner can read at once instead of waiting for its next interval.
//
// The pin comes from the caller (periph's gpioreg on the host, gpiotest in
// tests). Edge detection needs a pin that supports it: on a Raspberry Pi,
// any GPIO through the kernel's GPIO character device.
//
// Reference: periph.io/x/conn/v3/gpio (PinIn.In, PinIn.WaitForEdge).
package gpioin
