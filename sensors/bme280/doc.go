// Package bme280 reads the Bosch BME280 (temperature, humidity, pressure)
// and BMP280 (temperature, pressure) environment sensors over I²C.
//
// The driver is synchronous: each Read starts one measurement in forced
// mode, waits for it and applies the datasheet's compensation formulas with
// the chip's own calibration words. Between reads the chip sleeps, which
// keeps self-heating negligible. After a failed read the next Read checks
// the chip id, reloads the calibration and rewrites the configuration, so a
// chip that was unplugged, reset or browned out recovers by itself.
//
// Datasheets:
//
//	BME280: https://www.bosch-sensortec.com/media/boschsensortec/downloads/datasheets/bst-bme280-ds002.pdf
//	BMP280: https://www.bosch-sensortec.com/media/boschsensortec/downloads/datasheets/bst-bmp280-ds001.pdf
package bme280
