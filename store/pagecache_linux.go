package store

import (
	"os"

	"golang.org/x/sys/unix"
)

// dropCache drops the file's clean pages from the page cache before bbolt
// maps it. Linux (ext4 on recent kernels) may cache a file in large folios
// (bbolt creates a file with one 16 KiB write; a read may read ahead in
// large folios), and a write into a folio dirties, and counts in
// write_bytes, the whole folio: each commit's 4 KiB meta page then costs
// 16 KiB or more. Dropped pages come back one page at a time through
// bbolt's mapping (MADV_RANDOM: no read-ahead) and its 4 KiB writes. It
// costs rereading the pages a commit touches, once. Errors are ignored: it
// only saves bytes.
func dropCache(f *os.File) {
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
}
