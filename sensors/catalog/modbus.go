package catalog

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/floorhub/floorhub/internal/yamlconf"
	"github.com/floorhub/floorhub/sensors/modbus"
)

// modbusSettings is the `settings:` block of "modbus-tcp" (host) and
// "modbus-rtu" (port, baud, parity, stop_bits):
//
//	host: 192.168.1.20:502    # modbus-tcp: the server; port 502 by default
//	port: /dev/ttyUSB0        # modbus-rtu: the serial port
//	baud: 19200               # modbus-rtu; default 19200
//	parity: even              # modbus-rtu: even (default), none, odd
//	stop_bits: 1              # modbus-rtu; default 1, 2 with parity none
//	unit_id: 1                # default 1
//	timeout: 1s               # per request; default 1s
//	retries: 1                # after a timeout or a bad CRC; default 0
//	registers:
//	  - metric: power         # required, unique
//	    unit: kW
//	    table: holding_register # coil, discrete_input, input_register, holding_register (default)
//	    address: 0            # protocol address, 0-65535
//	    type: float32         # bool, int16, uint16 (default), int32, uint32, float32, float64
//	    byte_order: big       # big (default) or little: the bytes in each register
//	    word_order: big       # big (default) or little: the registers of a 32/64-bit value
//	    scale: 0.001          # default 1
//	    offset: 0             # added after scale; default 0
type modbusSettings struct {
	Host      string           `yaml:"host"`
	Port      string           `yaml:"port"`
	Baud      int              `yaml:"baud"`
	Parity    string           `yaml:"parity"`
	StopBits  int              `yaml:"stop_bits"`
	UnitID    *int             `yaml:"unit_id"`
	Timeout   *time.Duration   `yaml:"timeout"`
	Retries   int              `yaml:"retries"`
	Registers []modbusRegister `yaml:"registers"`
}

type modbusRegister struct {
	Metric    string   `yaml:"metric"`
	Unit      string   `yaml:"unit"`
	Table     string   `yaml:"table"`
	Address   int      `yaml:"address"`
	Type      string   `yaml:"type"`
	ByteOrder string   `yaml:"byte_order"`
	WordOrder string   `yaml:"word_order"`
	Scale     *float64 `yaml:"scale"`
	Offset    float64  `yaml:"offset"`
}

// modbusKeys maps the Go fields of modbus.Options and modbus.Register to
// their config keys, to name the key of a *modbus.FieldError.
var modbusKeys = map[string]string{
	"TCP": "host", "Serial": "port", "Baud": "baud", "Parity": "parity", "StopBits": "stop_bits",
	"UnitID": "unit_id", "Timeout": "timeout", "Retries": "retries", "Registers": "registers",
	"Metric": "metric", "Unit": "unit", "Table": "table", "Address": "address", "Type": "type",
	"ByteSwap": "byte_order", "WordSwap": "word_order", "Scale": "scale", "Offset": "offset",
}

// settingsLine is the line of a key under the settings block, following
// path through mappings (keys) and sequences (indexes); the deepest node
// found when the path ends early.
func settingsLine(s *Spec, path ...string) int {
	n := &s.Settings
	if n.Kind == yamlconf.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	if line == 0 {
		line = s.Line
	}
	for _, p := range path {
		var next *yamlconf.Node
		switch n.Kind {
		case yamlconf.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == p {
					line = n.Content[i].Line
					next = n.Content[i+1]
				}
			}
		case yamlconf.SequenceNode:
			if i, err := strconv.Atoi(p); err == nil && i >= 0 && i < len(n.Content) {
				next = n.Content[i]
				line = next.Line
			}
		}
		if next == nil {
			return line
		}
		n = next
	}
	return line
}

// modbusError names the settings key, and its line, of a register map
// entry's (reg >= 0) or the block's field.
func modbusError(s *Spec, reg int, key, format string, args ...any) error {
	name, path := key, []string{key}
	if reg >= 0 {
		name = fmt.Sprintf("registers[%d].%s", reg, key)
		path = []string{"registers", strconv.Itoa(reg), key}
	}
	return fmt.Errorf("settings (line %d): %s: %s", settingsLine(s, path...), name, fmt.Sprintf(format, args...))
}

func parseModbus(s *Spec, tcp bool) (*modbus.Options, error) {
	if err := unused(s, true, true, true); err != nil {
		return nil, err
	}
	var set modbusSettings
	if err := s.Decode(&set); err != nil {
		return nil, err
	}
	o := &modbus.Options{TCP: set.Host, Serial: set.Port, Baud: set.Baud, StopBits: set.StopBits, Retries: set.Retries}
	if tcp {
		switch {
		case set.Host == "":
			return nil, modbusError(s, -1, "host", "missing: the server's host:port, e.g. 192.168.1.20:502")
		case set.Port != "":
			return nil, modbusError(s, -1, "port", "a modbus-tcp device has a host, not a serial port")
		case set.Baud != 0 || set.Parity != "" || set.StopBits != 0:
			return nil, modbusError(s, -1, "baud", "baud, parity and stop_bits are for modbus-rtu")
		}
	} else {
		switch {
		case set.Port == "":
			return nil, modbusError(s, -1, "port", "missing: the serial port, e.g. /dev/ttyUSB0")
		case set.Host != "":
			return nil, modbusError(s, -1, "host", "a modbus-rtu device has a serial port, not a host")
		}
		if set.Parity != "" {
			p, err := modbus.ParseParity(set.Parity)
			if err != nil {
				return nil, modbusError(s, -1, "parity", "%v", err)
			}
			o.Parity = p
		}
	}
	if set.UnitID != nil {
		if *set.UnitID == 0 {
			return nil, modbusError(s, -1, "unit_id", "0 is the broadcast address, which no device answers")
		}
		o.UnitID = *set.UnitID
	}
	if set.Timeout != nil {
		if *set.Timeout <= 0 {
			return nil, modbusError(s, -1, "timeout", "%v: want a positive duration such as 500ms", *set.Timeout)
		}
		o.Timeout = *set.Timeout
	}
	for i, r := range set.Registers {
		reg := modbus.Register{Metric: r.Metric, Unit: r.Unit, Address: r.Address, Offset: r.Offset}
		var err error
		if r.Table != "" {
			if reg.Table, err = modbus.ParseTable(r.Table); err != nil {
				return nil, modbusError(s, i, "table", "%v", err)
			}
		}
		if r.Type != "" {
			if reg.Type, err = modbus.ParseType(r.Type); err != nil {
				return nil, modbusError(s, i, "type", "%v", err)
			}
		}
		for _, o := range []struct {
			key, v string
			swap   *bool
		}{{"byte_order", r.ByteOrder, &reg.ByteSwap}, {"word_order", r.WordOrder, &reg.WordSwap}} {
			switch o.v {
			case "", "big":
			case "little":
				*o.swap = true
			default:
				return nil, modbusError(s, i, o.key, "%q: want big or little", o.v)
			}
		}
		if r.Scale != nil {
			if *r.Scale == 0 {
				return nil, modbusError(s, i, "scale", "0 would report only the offset")
			}
			reg.Scale = *r.Scale
		}
		o.Registers = append(o.Registers, reg)
	}
	if err := o.Validate(); err != nil {
		var fe *modbus.FieldError
		if !errors.As(err, &fe) {
			return nil, err
		}
		key := modbusKeys[fe.Field]
		if key == "" {
			key = strings.ToLower(fe.Field)
		}
		return nil, modbusError(s, fe.Register, key, "%s", fe.Reason)
	}
	return o, nil
}

func init() {
	for _, v := range []struct {
		name string
		tcp  bool
	}{{"modbus-tcp", true}, {"modbus-rtu", false}} {
		v := v
		Register(v.name, Driver{
			Check: func(s *Spec) error {
				_, err := parseModbus(s, v.tcp)
				return err
			},
			Metrics: func(s *Spec) []string {
				o, err := parseModbus(s, v.tcp)
				if err != nil {
					return nil
				}
				return o.Metrics()
			},
			Build: func(s *Spec, _ Hardware) (Sensor, error) {
				o, err := parseModbus(s, v.tcp)
				if err != nil {
					return nil, err
				}
				return modbus.Open(o)
			},
			SharesLine: true,
		})
	}
}
