// Package ds2482 drives the Maxim DS2482-100 I²C to 1-Wire bridge, so a
// 1-Wire bus (DS18B20 probes) can hang off an I²C bus instead of a GPIO
// pin with the kernel's bit-banging w1-gpio driver.
//
// Dev implements periph's onewire.Bus and onewire.BusSearcher: Tx issues a
// 1-Wire reset, writes and reads bytes, and can leave the strong pull-up on
// to power a temperature conversion. It also has LockBus/UnlockBus so a
// driver can hold the bus across a multi-transaction exchange (convert,
// wait, read) while other probes on the same bridge wait.
//
// Datasheet: https://www.analog.com/media/en/technical-documentation/data-sheets/ds2482-100.pdf
package ds2482
