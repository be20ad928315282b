package convert

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSyncDir checks that syncDir syncs an existing directory and reports,
// naming it, one it cannot open (the error staging now returns).
func TestSyncDir(t *testing.T) {
	dir := t.TempDir()
	if err := syncDir(dir); err != nil {
		t.Fatalf("syncDir(%s): %v", dir, err)
	}
	missing := filepath.Join(dir, "missing")
	err := syncDir(missing)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Fatalf("syncDir(%s) = %v, want a not-exist error naming the directory", missing, err)
	}
}
