package onnx

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"
)

// externalFile is a memory-mapped external-data file.
type externalFile struct {
	path string
	data []byte
	err  error
}

func (e *externalFile) close() error {
	if e.data == nil {
		return nil
	}
	err := unix.Munmap(e.data)
	e.data = nil
	if err != nil {
		return fmt.Errorf("onnx: munmap %s: %w", e.path, err)
	}
	return nil
}

// externalBytes maps the tensor's external-data file (once) and returns the
// tensor's bytes in it.
func (m *Model) externalBytes(t *Tensor) ([]byte, error) {
	loc := t.External.Location
	if !filepath.IsLocal(loc) {
		return nil, fmt.Errorf("%s: tensor %q: external data location %q is not a path inside the model's folder", m.where(), t.Name, loc)
	}
	m.mu.Lock()
	if m.external == nil {
		m.external = map[string]*externalFile{}
	}
	e, ok := m.external[loc]
	if !ok {
		e = mapFile(m.Dir(), loc)
		m.external[loc] = e
	}
	m.mu.Unlock()
	if e.err != nil {
		return nil, fmt.Errorf("%s: tensor %q: external data: %w", m.where(), t.Name, e.err)
	}
	end := t.External.Offset + t.External.Length
	if end < t.External.Offset || end > int64(len(e.data)) {
		return nil, fmt.Errorf("%s: tensor %q: external data file %s is %d bytes, the tensor needs bytes [%d, %d)",
			m.where(), t.Name, e.path, len(e.data), t.External.Offset, end)
	}
	return e.data[t.External.Offset:end:end], nil
}

// mapFile maps loc, a path inside dir. It opens it through an os.Root, so
// neither ".." nor a symlink (of loc or of a folder on its way) can lead
// outside dir: a model must not make the stager read, and serve as weights,
// a file it has no business with.
func mapFile(dir, loc string) *externalFile {
	path := filepath.Join(dir, loc)
	e := &externalFile{path: path}
	f, err := openBeneath(dir, loc)
	if err != nil {
		e.err = err
		return e
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		e.err = err
		return e
	}
	if st.Size() == 0 {
		e.data = nil
		return e
	}
	if int64(int(st.Size())) != st.Size() {
		e.err = fmt.Errorf("%s: %d bytes is too large to map", path, st.Size())
		return e
	}
	e.data, e.err = unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if e.err != nil {
		e.err = fmt.Errorf("mmap %s: %w", path, e.err)
	}
	return e
}

// openBeneath opens loc inside dir, refusing a path that resolves outside it.
func openBeneath(dir, loc string) (*os.File, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	f, err := root.Open(loc)
	if err != nil {
		if _, lerr := os.Lstat(filepath.Join(dir, loc)); lerr == nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrPermission) {
			return nil, fmt.Errorf("location %q leads outside the model's folder %s (through a symlink): %w", loc, dir, err)
		}
		return nil, err
	}
	return f, nil
}

// dropBatch is how much of the model's mapping drop lets accumulate before
// one madvise releases it: a call per tensor costs more than the parse itself
// (each walks and flushes page tables), one per 32 MiB bounds what the parse
// keeps resident.
const dropBatch = 32 << 20

// drop releases the pages of b, a part of the model's mapping that follows
// the parts dropped before, from the resident set: pages pile up until
// dropBatch bytes are pending, then go in one madvise (a no-op for models
// parsed from memory). flushDrop releases what is still pending.
func (m *Model) drop(b []byte) {
	if len(m.mapped) == 0 || len(b) == 0 {
		return
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(m.mapped)))
	lo := int(uintptr(unsafe.Pointer(unsafe.SliceData(b))) - base)
	hi := lo + len(b)
	if lo < 0 || hi > len(m.mapped) {
		return
	}
	if m.dropHi == 0 {
		m.dropLo = lo
	}
	m.dropHi = hi
	if m.dropHi-m.dropLo >= dropBatch {
		m.flushDrop()
	}
}

// flushDrop releases the pages drop left pending.
func (m *Model) flushDrop() {
	if m.dropHi > m.dropLo {
		dropPages(m.mapped, m.mapped[m.dropLo:m.dropHi])
	}
	m.dropLo, m.dropHi = 0, 0
}

// dropPages madvises away the pages of whole that hold part, if part lies in whole.
func dropPages(whole, part []byte) bool {
	base := uintptr(unsafe.Pointer(unsafe.SliceData(whole)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(part)))
	if p < base || p+uintptr(len(part)) > base+uintptr(len(whole)) {
		return false
	}
	page := uintptr(os.Getpagesize())
	lo := (p - base) &^ (page - 1)
	hi := min((p-base+uintptr(len(part))+page-1)&^(page-1), uintptr(len(whole)))
	_ = unix.Madvise(whole[lo:hi], unix.MADV_DONTNEED) // advice: if refused, the clean pages stay cached
	return true
}

// Release tells the kernel that the tensor's payload pages will not be needed
// again soon, so they leave the process's resident set (the file stays in the
// page cache). Reading the payload again afterwards is still valid.
func (m *Model) Release(t *Tensor) {
	b, ok, err := m.Bytes(t)
	if err == nil && ok {
		m.ReleaseBytes(b)
	}
}

// ReleaseBytes is Release for part of a payload returned by Bytes.
func (m *Model) ReleaseBytes(b []byte) {
	if len(b) == 0 {
		return
	}
	m.mu.Lock()
	maps := [][]byte{m.mapped}
	for _, e := range m.external {
		maps = append(maps, e.data)
	}
	m.mu.Unlock()
	for _, whole := range maps {
		if len(whole) > 0 && dropPages(whole, b) {
			return
		}
	}
}
