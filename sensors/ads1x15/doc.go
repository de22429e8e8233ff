// Package ads1x15 reads the Texas Instruments ADS1115 (16-bit) and ADS1015
// (12-bit) analog-to-digital converters over I²C.
//
// Each Read converts every configured channel once in single-shot mode,
// with its own input multiplexer setting (single-ended or differential),
// full-scale range and data rate, and maps the result linearly to an
// engineering unit: for example a 4–20 mA loop through a 250 Ω shunt to
// 0–10 bar. The chip powers down between conversions.
//
// Datasheets:
//
//	ADS1115: https://www.ti.com/lit/ds/symlink/ads1115.pdf (SBAS444)
//	ADS1015: https://www.ti.com/lit/ds/symlink/ads1015.pdf (SBAS473)
package ads1x15
