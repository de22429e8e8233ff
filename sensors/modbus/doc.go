// Package modbus reads PLCs, power meters and drives over Modbus TCP and
// Modbus RTU (RS-485).
//
// A device is a unit id on a line (a TCP connection or a serial port) and
// a register map: each entry names a metric, the table it lives in (coils,
// discrete inputs, input registers, holding registers), its address and
// data type, its byte and word order, and a scale and an offset. Each Read
// fetches the whole map in as few requests as the protocol allows (Plan)
// and decodes it.
//
// Several devices on one line share it (Open returns the same Line for the
// same address): their requests are serialized and each device keeps its
// own errors, so one silent unit on an RS-485 line does not take the
// others' status with it. An exception reply becomes an error naming the
// exception ("illegal data address"); a timeout or a CRC error closes the
// line's connection, and the next request opens it again.
//
// The wire protocol is github.com/simonvetter/modbus's client.
//
// Specifications:
//
//	Modbus Application Protocol V1.1b3: https://modbus.org/docs/Modbus_Application_Protocol_V1_1b3.pdf
//	Modbus over Serial Line V1.02:      https://modbus.org/docs/Modbus_over_serial_line_V1_02.pdf
//	Modbus Messaging on TCP/IP V1.0b:   https://modbus.org/docs/Modbus_Messaging_Implementation_Guide_V1_0b.pdf
package modbus
