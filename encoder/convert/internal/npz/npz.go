// Package npz reads NumPy .npz archives of float32 arrays (numpy.savez), the
// format the fixture generator uses for PyTorch state dicts and references.
package npz

import (
	"archive/zip"
	"fmt"
	"strings"

	"github.com/xdna-whisper/xdna-whisper/encoder/npy"
)

// Read returns every array of the archive at path, keyed by name (the member
// name without ".npy").
func Read(path string) (map[string]npy.Array, error) {
	z, err := zip.OpenReader(path)
	if err != nil {
		return nil, fmt.Errorf("npz %s: %w", path, err)
	}
	defer z.Close()
	out := map[string]npy.Array{}
	for _, f := range z.File {
		r, err := f.Open()
		if err != nil {
			return nil, fmt.Errorf("npz %s: %s: %w", path, f.Name, err)
		}
		a, err := npy.Read(r, int(f.UncompressedSize64/4)+1)
		_ = r.Close() // it can only repeat a read error, which npy.Read reports
		if err != nil {
			return nil, fmt.Errorf("npz %s: %s: %w", path, f.Name, err)
		}
		out[strings.TrimSuffix(f.Name, ".npy")] = a
	}
	return out, nil
}
