package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWrite(t *testing.T) {
	tests := []struct {
		name     string
		existing string // "" : no file before
		path     string // relative to the test's directory
		perm     os.FileMode
		data     string
	}{
		{"new file", "", "a.txt", 0o644, "hello\n"},
		{"replaces", "old content that is longer", "a.txt", 0o644, "new"},
		{"private mode", "", "secret", 0o600, "x"},
		{"creates the directory", "", "sub/dir/a.txt", 0o644, "deep"},
		{"empty", "old", "a.txt", 0o644, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, tt.path)
			if tt.existing != "" {
				if err := os.WriteFile(path, []byte(tt.existing), 0o666); err != nil {
					t.Fatal(err)
				}
			}
			if err := Write(path, []byte(tt.data), tt.perm); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil || string(got) != tt.data {
				t.Fatalf("content %q, %v; want %q", got, err, tt.data)
			}
			fi, _ := os.Stat(path)
			if fi.Mode().Perm() != tt.perm {
				t.Errorf("mode %v, want %v", fi.Mode().Perm(), tt.perm)
			}
			assertOnly(t, filepath.Dir(path), filepath.Base(path))
		})
	}
}

// TestWriteFuncFailure: a failing writer leaves the old file whole and no temporary file,
// and the error says which file and why.
func TestWriteFuncFailure(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "spec.json")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("disk on fire")
	err := WriteFunc(path, 0o644, func(w io.Writer) error {
		if _, err := io.WriteString(w, "half of the new"); err != nil {
			return err
		}
		// Mid-write, readers still see the old content.
		if got, _ := os.ReadFile(path); string(got) != "old" {
			t.Errorf("mid-write content %q, want the old one", got)
		}
		return boom
	})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), ".spec.json.tmp-") {
		t.Fatalf("error %v, want %v naming the temporary file", err, boom)
	}
	if got, _ := os.ReadFile(path); string(got) != "old" {
		t.Errorf("content after a failed write %q, want the old one", got)
	}
	assertOnly(t, dir, "spec.json")
}

func TestWriteUnwritableDirectory(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "file")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err := Write(filepath.Join(blocker, "a.txt"), []byte("x"), 0o644)
	if err == nil || !strings.Contains(err.Error(), "create "+blocker) {
		t.Fatalf("write under a regular file: %v, want an error naming %s", err, blocker)
	}
}

// assertOnly fails unless dir holds exactly the file name (no temporary files left).
func assertOnly(t *testing.T, dir, name string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != name {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("%s holds %q, want only %q", dir, names, name)
	}
}
