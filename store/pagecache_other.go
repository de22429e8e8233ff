//go:build !linux

package store

import "os"

// dropCache is a no-op where the page cache is not known to cache the
// file in folios larger than a page.
func dropCache(*os.File) {}
