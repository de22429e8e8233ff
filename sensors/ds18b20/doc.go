// Package ds18b20 reads Maxim DS18B20 1-Wire temperature probes.
//
// A probe is addressed by its ROM id, so several probes share one bus and
// each is its own device. Two ways to reach them:
//
//   - New, over any periph onewire.Bus, such as the DS2482 I²C bridge in
//     the ds2482 sub-package: the driver issues Convert T with the strong
//     pull-up, waits the conversion time of the configured resolution and
//     reads the scratchpad, checking its CRC.
//   - NewW1, through the Linux kernel's w1 subsystem (the w1-gpio overlay
//     on a Raspberry Pi: dtoverlay=w1-gpio,gpiopin=4 in config.txt), which
//     converts and checks the CRC itself when its w1_slave file is read.
//
// The probes of one bus convert together: Convert T after SKIP ROM
// reaches them all, and each reads its own scratchpad after the one wait,
// so N probes read at one point take 750 ms at 12 bits, not N × 750 ms.
// As Convert T also reaches the probes that did not ask (on a slower
// schedule), every conversion behind a bus such as the DS2482 lasts as
// long as the slowest probe opened on that bus needs, with the strong
// pull-up on throughout: a parasite-powered probe at 12 bits does not lose
// power because a 9-bit one read first.
// Through the kernel this needs its bulk read (therm_bulk_read, Linux 5.8)
// and write access to it; without, each probe converts on its own.
//
// Faults are told apart: a probe that does not answer (ErrNotFound), a
// garbled transfer (ErrCRC), and the power-on value 85 °C that a probe
// returns when it lost power before converting (ErrStuck). The next Read
// after a failure starts over, so a probe plugged back in recovers.
//
// Datasheet: https://www.analog.com/media/en/technical-documentation/data-sheets/DS18B20.pdf
package ds18b20
