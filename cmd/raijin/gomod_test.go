package main

import (
	"os"
	"strings"
	"testing"
)

// TestGoModHasNoReplaceOrExclude keeps `go install
// github.com/raijin-deploy/raijin/cmd/raijin@VERSION` working, as the README
// promises: the go command refuses to install a module at a version when its
// go.mod holds a replace or exclude directive. A dependency must be required
// under the path the module proxy serves it by.
func TestGoModHasNoReplaceOrExclude(t *testing.T) {
	data, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if d := strings.TrimSuffix(fields[0], "("); d == "replace" || d == "exclude" {
			t.Errorf("go.mod:%d: %q: `go install …@version` refuses a module whose go.mod has a %s directive", i+1, line, d)
		}
	}
}
