package catalog_test

import (
	"os"
	"strings"
	"testing"

	"github.com/floorhub/floorhub/sensors/catalog"
)

// The example in docs/sensors.md is a valid configuration.
func TestDocsExample(t *testing.T) {
	b, err := os.ReadFile("../../docs/sensors.md")
	if err != nil {
		t.Skip("docs/sensors.md not found:", err)
	}
	_, rest, ok := strings.Cut(string(b), "```yaml\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("no yaml block in docs/sensors.md")
	}
	s := specs(t, block)
	if len(s) != 6 {
		t.Fatalf("%d devices in the example", len(s))
	}
	if err := catalog.Validate(s); err != nil {
		t.Fatal(err)
	}
}
