// Package pulse counts pulses on a GPIO input: a flow meter's reed
// contact, an S0 energy meter's optocoupler output (IEC 62053-31), a
// machine's cycle counter.
//
// A goroutine the Dev owns counts every edge as it happens, so no pulse is
// lost however seldom the owner reads; Read returns the running total and
// the rate since the previous Read. The total starts at zero when the Dev
// is created, unless its owner resumes it from the last total it stored
// (Resume; the agent does): pulses while nothing counted are not in it.
//
// References: periph.io/x/conn/v3/gpio (PinIn.In, PinIn.WaitForEdge);
// IEC 62053-31 for S0 outputs (pulses of at least 30 ms).
package pulse
