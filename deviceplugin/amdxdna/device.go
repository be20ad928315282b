package amdxdna

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Querier answers amdxdna queries for one device. *Device is the real one;
// tests substitute replies shaped like the kernel's.
type Querier interface {
	// GetInfo runs GET_INFO with param into buf and returns the number of bytes
	// the kernel reports written.
	GetInfo(param Param, buf []byte) (int, error)
	// GetArray runs GET_ARRAY with param, offering elemSize-byte elements and
	// room for len(buf)/elemSize of them; it returns the kernel's element size
	// and element count.
	GetArray(param ArrayParam, elemSize uint32, buf []byte) (kernelElemSize, n uint32, err error)
	// Version runs DRM_IOCTL_VERSION.
	Version() (DRMVersion, error)
	// Close releases the device.
	Close() error
}

// Device is an open /dev/accel/accelN of the amdxdna driver.
type Device struct {
	path string
	fd   int
}

// Open opens the accel node read-write (amdxdna's ioctls need it) and
// close-on-exec. Opening does not wake the NPU; each GET_INFO does.
func Open(path string) (*Device, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &QueryError{Path: path, Op: "open", Errno: errnoOf(err), Err: err}
	}
	return &Device{path: path, fd: fd}, nil
}

// Close closes the device.
func (d *Device) Close() error { return unix.Close(d.fd) }

// ioctl runs one ioctl, retrying on EINTR and EAGAIN as libdrm's drmIoctl does.
func (d *Device) ioctl(req uintptr, arg unsafe.Pointer) error {
	for {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(d.fd), req, uintptr(arg))
		if e == unix.EINTR || e == unix.EAGAIN {
			continue
		}
		if e != 0 {
			return e
		}
		return nil
	}
}

// GetInfo implements Querier.
func (d *Device) GetInfo(param Param, buf []byte) (int, error) {
	if len(buf) == 0 {
		return 0, fmt.Errorf("GET_INFO %s on %s: empty buffer", param, d.path)
	}
	arg := getInfo{Param: uint32(param), BufferSize: uint32(len(buf)), Buffer: uint64(uintptr(unsafe.Pointer(&buf[0])))}
	err := d.ioctl(IoctlGetInfo, unsafe.Pointer(&arg))
	runtime.KeepAlive(buf)
	if err != nil {
		return 0, &QueryError{Path: d.path, Op: "GET_INFO " + param.String(), Errno: errnoOf(err), Err: err}
	}
	return int(arg.BufferSize), nil
}

// GetArray implements Querier.
func (d *Device) GetArray(param ArrayParam, elemSize uint32, buf []byte) (uint32, uint32, error) {
	if elemSize == 0 || len(buf) < int(elemSize) {
		return 0, 0, fmt.Errorf("GET_ARRAY %d on %s: buffer of %d bytes holds no %d-byte element", param, d.path, len(buf), elemSize)
	}
	arg := getArray{Param: uint32(param), ElementSize: elemSize, NumElement: uint32(len(buf)) / elemSize,
		Buffer: uint64(uintptr(unsafe.Pointer(&buf[0])))}
	err := d.ioctl(IoctlGetArray, unsafe.Pointer(&arg))
	runtime.KeepAlive(buf)
	if err != nil {
		return 0, 0, &QueryError{Path: d.path, Op: fmt.Sprintf("GET_ARRAY %d", param), Errno: errnoOf(err), Err: err}
	}
	return arg.ElementSize, arg.NumElement, nil
}

// Version implements Querier.
func (d *Device) Version() (DRMVersion, error) {
	var name, date, desc [64]byte
	arg := drmVersion{
		NameLen: uint64(len(name)), Name: uint64(uintptr(unsafe.Pointer(&name[0]))),
		DateLen: uint64(len(date)), Date: uint64(uintptr(unsafe.Pointer(&date[0]))),
		DescLen: uint64(len(desc)), Desc: uint64(uintptr(unsafe.Pointer(&desc[0]))),
	}
	err := d.ioctl(IoctlVersion, unsafe.Pointer(&arg))
	runtime.KeepAlive(&name)
	runtime.KeepAlive(&date)
	runtime.KeepAlive(&desc)
	if err != nil {
		return DRMVersion{}, &QueryError{Path: d.path, Op: "DRM_IOCTL_VERSION", Errno: errnoOf(err), Err: err}
	}
	str := func(b []byte, n uint64) string { return cString(b[:min(n, uint64(len(b)))]) }
	return DRMVersion{Major: arg.Major, Minor: arg.Minor, Patch: arg.Patch,
		Name: str(name[:], arg.NameLen), Date: str(date[:], arg.DateLen), Desc: str(desc[:], arg.DescLen)}, nil
}

// QueryError is a failed open or ioctl, with the errno that says why.
type QueryError struct {
	Path, Op string
	Errno    unix.Errno // 0 when the error is not an errno
	Err      error
}

// Error says what failed where.
func (e *QueryError) Error() string { return fmt.Sprintf("%s %s: %v", e.Op, e.Path, e.Err) }

// Unwrap returns the underlying error.
func (e *QueryError) Unwrap() error { return e.Err }

// Refused reports whether the driver declined the query rather than failing
// at it: ENOTTY (no such ioctl: not amdxdna, or a kernel without it), EINVAL
// and EOPNOTSUPP (unknown parameter or struct size), EPERM and EACCES (not
// allowed). The caller then falls back to sysfs.
func (e *QueryError) Refused() bool {
	switch e.Errno {
	case unix.ENOTTY, unix.EINVAL, unix.EOPNOTSUPP, unix.EPERM, unix.EACCES:
		return true
	}
	return false
}

// Reason explains the errno for a human, e.g. "ENOTTY: the driver has no such
// ioctl (not amdxdna, or an older kernel)".
func (e *QueryError) Reason() string {
	switch e.Errno {
	case unix.ENOTTY:
		return "ENOTTY: the driver has no such ioctl (not amdxdna, or an older kernel)"
	case unix.EINVAL, unix.EOPNOTSUPP:
		return errnoName(e.Errno) + ": the driver does not know this query (older kernel)"
	case unix.EPERM, unix.EACCES:
		return errnoName(e.Errno) + ": not permitted (the query needs root or the context's owner)"
	case 0:
		return e.Err.Error()
	}
	return errnoName(e.Errno) + ": " + e.Errno.Error()
}

// IsRefused reports whether err is a QueryError the driver refused.
func IsRefused(err error) bool {
	var q *QueryError
	return errors.As(err, &q) && q.Refused()
}

// errnoOf extracts an errno from err, 0 when there is none.
func errnoOf(err error) unix.Errno {
	var e unix.Errno
	if errors.As(err, &e) {
		return e
	}
	return 0
}

// errnoName is the errno's C name; EOPNOTSUPP (the value the kernel returns
// for unknown GET_INFO parameters) rather than its alias ENOTSUP.
func errnoName(e unix.Errno) string {
	if e == unix.EOPNOTSUPP {
		return "EOPNOTSUPP"
	}
	return unix.ErrnoName(e)
}

// AIEStatus is QUERY_AIE_STATUS's answer: a dump of the columns' status
// registers and the bitmap of columns it covers.
type AIEStatus struct {
	// ColumnsFilled has bit i set when column i's data is in Data.
	ColumnsFilled uint32
	// Data is the dump, ColumnSize bytes per filled column (see AIEMetadata).
	Data []byte
}

// AIEStatus runs QUERY_AIE_STATUS with a dump buffer of size bytes. Unlike the
// other queries its GET_INFO buffer is struct amdxdna_drm_query_aie_status,
// which points at a second buffer, so it is a method of the real device only.
func (d *Device) AIEStatus(size int) (AIEStatus, error) {
	if size <= 0 {
		return AIEStatus{}, fmt.Errorf("QUERY_AIE_STATUS on %s: dump buffer of %d bytes", d.path, size)
	}
	dump := make([]byte, size)
	st := rawAIEStatus{Buffer: uint64(uintptr(unsafe.Pointer(&dump[0]))), BufferSize: uint32(size)}
	arg := getInfo{Param: uint32(ParamAIEStatus), BufferSize: uint32(unsafe.Sizeof(st)),
		Buffer: uint64(uintptr(unsafe.Pointer(&st)))}
	err := d.ioctl(IoctlGetInfo, unsafe.Pointer(&arg))
	runtime.KeepAlive(dump)
	runtime.KeepAlive(&st)
	if err != nil {
		return AIEStatus{}, &QueryError{Path: d.path, Op: "GET_INFO " + ParamAIEStatus.String(), Errno: errnoOf(err), Err: err}
	}
	return AIEStatus{ColumnsFilled: st.ColsFilled, Data: dump}, nil
}
