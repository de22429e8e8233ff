// Package importrules holds, in its test, the import rules of floorhub's
// architecture, checked against what `go list -deps -test` reports for the
// whole module:
//
//   - drivers (sensors/...) import no store, hub, uplink or agent;
//   - the store imports nothing of the module but itself: it knows no
//     consumer;
//   - the hub and the uplinks never import each other: they meet in the
//     agent, and share only the command vocabulary (command/), the wire
//     protocol (aether/) and the store's record types;
//   - only cmd/ imports periph.io/x/host: everything else, drivers
//     included, receives its buses and pins and runs anywhere.
//
// A package's tests count as the package: a driver test that imported the
// store would drag it into the driver's test binary, and a hub test that
// imported an uplink would tie the two together just the same.
//
// The package has no code of its own; `go test ./internal/importrules`
// runs the check.
package importrules
