package catalog

import (
	"github.com/floorhub/floorhub/sensors/sim"
)

// simSettings is the `settings:` block of a simulated device.
type simSettings struct {
	// Seed makes the values reproducible; default: the device id.
	Seed   uint64     `yaml:"seed"`
	Faults sim.Faults `yaml:"faults"`
}

func init() {
	for _, kind := range []string{sim.Env, sim.Hot, sim.Door, sim.Counter} {
		kind := kind
		opts := func(s *Spec) (*sim.Opts, error) {
			var set simSettings
			if err := s.Decode(&set); err != nil {
				return nil, err
			}
			if set.Seed == 0 {
				set.Seed = uint64(s.ID)
			}
			return &sim.Opts{Kind: kind, Seed: set.Seed, Faults: set.Faults}, nil
		}
		Register("sim-"+kind, Driver{
			Check: func(s *Spec) error {
				o, err := opts(s)
				if err != nil {
					return err
				}
				_, err = sim.New(o)
				return err
			},
			Metrics: func(*Spec) []string { return sim.Metrics(kind) },
			Build: func(s *Spec, _ Hardware) (Sensor, error) {
				o, err := opts(s)
				if err != nil {
					return nil, err
				}
				return sim.New(o)
			},
		})
	}
}
