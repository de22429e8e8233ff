package ds2482

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/onewire"
)

// Errors besides the I²C bus's own, which are wrapped.
var (
	// ErrNotBridge means the chip at the address did not answer a device
	// reset the way a DS2482 does.
	ErrNotBridge = errors.New("ds2482: no DS2482 at this address")
	// ErrNoPresence means no 1-Wire device answered the reset pulse: the
	// probes are unplugged or the 1-Wire line is open.
	ErrNoPresence = errors.New("ds2482: no device on the 1-Wire bus")
	// ErrShorted means the 1-Wire line is shorted to ground.
	ErrShorted = errors.New("ds2482: 1-Wire bus shorted")
	// ErrBusy means the bridge stayed busy: the 1-Wire line is stuck.
	ErrBusy = errors.New("ds2482: 1-Wire bus stuck busy")
)

// Commands (datasheet table "Function Commands").
const (
	cmdDeviceReset   = 0xF0
	cmdSetReadPtr    = 0xE1
	cmdWriteConfig   = 0xD2
	cmdReset1W       = 0xB4
	cmdWriteByte     = 0xA5
	cmdReadByte      = 0x96
	cmdTriplet       = 0x78
	ptrReadData      = 0xE1
	statusBusy       = 1 << 0 // 1WB
	statusPresence   = 1 << 1 // PPD
	statusShort      = 1 << 2 // SD
	statusDeviceRst  = 1 << 4 // RST
	statusSingleBit  = 1 << 5 // SBR
	statusTriplet    = 1 << 6 // TSB
	statusDirection  = 1 << 7 // DIR
	cfgActivePullup  = 1 << 0 // APU
	cfgStrongPullup  = 1 << 2 // SPU
	maxPolls         = 200
	defaultAddr      = 0x18
	addrLast         = 0x1B
	statusAfterReset = statusDeviceRst
)

// Opts configures the bridge. The zero value means the active pull-up is
// on, as the datasheet recommends for more than one device or long lines.
type Opts struct {
	// PassivePullup turns the active pull-up (APU) off: only for a single
	// device on a short line.
	PassivePullup bool
}

// Dev is one DS2482-100. It is safe for concurrent use: each Tx is atomic,
// and Lock/Unlock group several.
type Dev struct {
	bus  i2c.Bus
	addr uint16
	cfg  byte

	txn   chan struct{} // a one-slot semaphore held across several Tx (see LockBus)
	mu    sync.Mutex    // held for one Tx or triplet
	stale bool          // an I²C error happened: reset the bridge before the next use
}

// New resets the bridge at addr (0x18 to 0x1B) on b and configures it.
func New(b i2c.Bus, addr uint16, opts *Opts) (*Dev, error) {
	if b == nil {
		return nil, errors.New("ds2482: no I²C bus")
	}
	if addr == 0 {
		addr = defaultAddr
	}
	if addr < defaultAddr || addr > addrLast {
		return nil, fmt.Errorf("ds2482: address 0x%02X: the DS2482-100 answers only on 0x18 to 0x1B", addr)
	}
	d := &Dev{bus: b, addr: addr, cfg: cfgActivePullup, txn: make(chan struct{}, 1)}
	if opts != nil && opts.PassivePullup {
		d.cfg = 0
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.reset(); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *Dev) String() string { return fmt.Sprintf("DS2482 at 0x%02X on %s", d.addr, d.bus) }

// LockBus reserves the 1-Wire bus for a sequence of transactions, waiting
// at most until ctx ends. Tx does not need it; drivers whose exchanges must
// not be interleaved (convert, wait, read) do. It is not sync.Locker on
// purpose: waiting must honour the reader's deadline, and periph's fakes
// embed a mutex that a driver looking for sync.Locker would deadlock on.
func (d *Dev) LockBus(ctx context.Context) error {
	select {
	case d.txn <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("ds2482: waiting for the 1-Wire bus: %w", ctx.Err())
	}
}

// UnlockBus releases the bus reserved by LockBus.
func (d *Dev) UnlockBus() { <-d.txn }

// reset resets the bridge and writes its configuration. Caller holds d.mu.
func (d *Dev) reset() error {
	var st [1]byte
	if err := d.bus.Tx(d.addr, []byte{cmdDeviceReset}, st[:]); err != nil {
		return fmt.Errorf("ds2482: device reset at 0x%02X: %w", d.addr, err)
	}
	// After a device reset RST is set and the line is idle; LL (bit 3)
	// follows the line and may be either.
	if st[0]&^(1<<3) != statusAfterReset {
		return fmt.Errorf("%w 0x%02X (status after reset 0x%02X)", ErrNotBridge, d.addr, st[0])
	}
	return d.writeConfig(d.cfg)
}

// writeConfig writes the configuration register: the low nibble, and its
// complement in the high nibble as the chip requires. Caller holds d.mu.
func (d *Dev) writeConfig(c byte) error {
	var got [1]byte
	if err := d.bus.Tx(d.addr, []byte{cmdWriteConfig, c | (^c)<<4}, got[:]); err != nil {
		return fmt.Errorf("ds2482: write config: %w", err)
	}
	if got[0] != c {
		return fmt.Errorf("%w 0x%02X (config reads 0x%02X, wrote 0x%02X)", ErrNotBridge, d.addr, got[0], c)
	}
	return nil
}

// wait polls the status register until the 1-Wire operation ends. The
// read pointer is on the status register after every 1-Wire command.
// Caller holds d.mu.
func (d *Dev) wait() (byte, error) {
	var st [1]byte
	for i := 0; i < maxPolls; i++ {
		if err := d.bus.Tx(d.addr, nil, st[:]); err != nil {
			return 0, fmt.Errorf("ds2482: read status: %w", err)
		}
		if st[0]&statusBusy == 0 {
			return st[0], nil
		}
	}
	return 0, ErrBusy
}

func (d *Dev) command(w ...byte) (byte, error) {
	if err := d.bus.Tx(d.addr, w, nil); err != nil {
		return 0, fmt.Errorf("ds2482: command 0x%02X: %w", w[0], err)
	}
	return d.wait()
}

// Tx implements onewire.Bus: a 1-Wire reset, then w written and r read.
// With onewire.StrongPullup the line is held high through the strong
// pull-up after the last byte written, until the next Tx.
func (d *Dev) Tx(w, r []byte, power onewire.Pullup) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.recover(); err != nil {
		return err
	}
	err := d.tx(w, r, power)
	d.noteI2CError(err)
	return err
}

// recover resets the bridge after an I²C error: it may have been power
// cycled and lost its configuration. Caller holds d.mu.
func (d *Dev) recover() error {
	if !d.stale {
		return nil
	}
	if err := d.reset(); err != nil {
		return err
	}
	d.stale = false
	return nil
}

// noteI2CError marks the bridge for a reset after an error on the I²C side;
// the 1-Wire line's own conditions (no presence, short) do not need one.
func (d *Dev) noteI2CError(err error) {
	if err != nil && !errors.Is(err, ErrNoPresence) && !errors.Is(err, ErrShorted) {
		d.stale = true
	}
}

// tx is Tx without the recovery. Caller holds d.mu.
func (d *Dev) tx(w, r []byte, power onewire.Pullup) error {
	st, err := d.command(cmdReset1W)
	if err != nil {
		return err
	}
	if st&statusShort != 0 {
		return ErrShorted
	}
	if st&statusPresence == 0 {
		return ErrNoPresence
	}
	for i, b := range w {
		if power == onewire.StrongPullup && i == len(w)-1 {
			// SPU applies to the next byte written and clears itself when
			// the next 1-Wire command ends the strong pull-up.
			if err := d.writeConfig(d.cfg | cfgStrongPullup); err != nil {
				return err
			}
		}
		if _, err := d.command(cmdWriteByte, b); err != nil {
			return err
		}
	}
	for i := range r {
		if _, err := d.command(cmdReadByte); err != nil {
			return err
		}
		if err := d.bus.Tx(d.addr, []byte{cmdSetReadPtr, ptrReadData}, r[i:i+1]); err != nil {
			return fmt.Errorf("ds2482: read data: %w", err)
		}
	}
	return nil
}

// SearchTriplet implements onewire.BusSearcher with the bridge's triplet
// command: two bits read and one written in one operation.
func (d *Dev) SearchTriplet(direction byte) (onewire.TripletResult, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.recover(); err != nil {
		return onewire.TripletResult{}, err
	}
	dir := byte(0)
	if direction != 0 {
		dir = 0x80
	}
	st, err := d.command(cmdTriplet, dir)
	if err != nil {
		d.noteI2CError(err)
		return onewire.TripletResult{}, err
	}
	tr := onewire.TripletResult{
		GotZero: st&statusSingleBit == 0, // a device sent a 0 for the bit
		GotOne:  st&statusTriplet == 0,   // a device sent a 0 for the complement
	}
	if st&statusDirection != 0 {
		tr.Taken = 1
	}
	return tr, nil
}

// Search implements onewire.Bus.
func (d *Dev) Search(alarmOnly bool) ([]onewire.Address, error) {
	return onewire.Search(d, alarmOnly)
}

var (
	_ onewire.Bus         = (*Dev)(nil)
	_ onewire.BusSearcher = (*Dev)(nil)
)
