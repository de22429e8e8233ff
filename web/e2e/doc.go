// Package e2e holds the dashboard's end-to-end tests: the real agent binary
// serving web/index.html, driven in Debian's headless Chromium through the
// DevTools protocol (chromedp, a test-only dependency). It has no code
// outside its tests.
//
// Screenshots are kept as test artifacts in the directory named by
// FLOORHUB_SCREENSHOTS (default: floorhub-screenshots under os.TempDir).
package e2e
