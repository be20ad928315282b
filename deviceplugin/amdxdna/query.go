package amdxdna

import (
	"fmt"
	"unsafe"
)

// Each query below wakes the NPU from runtime power management (the driver
// takes a runtime-PM reference around every GET_INFO): callers that poll
// should go through Inventory.

// maxHWContexts bounds the replies of the hardware-context queries; the
// firmware has far fewer slots (6 on Phoenix, 16 on Strix).
const maxHWContexts = 64

// queryInto runs one GET_INFO into a buffer of size bytes and returns the bytes
// the kernel says it wrote (all of them when it reports more than it was given,
// as queries that always copy the whole struct do).
func queryInto(q Querier, p Param, size int) ([]byte, error) {
	buf := make([]byte, size)
	n, err := q.GetInfo(p, buf)
	if err != nil {
		return nil, err
	}
	if n <= 0 || n > size {
		n = size
	}
	return buf[:n], nil
}

// QueryAIEMetadata asks for the AIE array's shape.
func QueryAIEMetadata(q Querier) (AIEMetadata, error) {
	b, err := queryInto(q, ParamAIEMetadata, int(unsafe.Sizeof(rawAIEMetadata{})))
	if err != nil {
		return AIEMetadata{}, err
	}
	return DecodeAIEMetadata(b)
}

// QueryAIEVersion asks for the AIE architecture version.
func QueryAIEVersion(q Querier) (AIEVersion, error) {
	b, err := queryInto(q, ParamAIEVersion, int(unsafe.Sizeof(rawAIEVersion{})))
	if err != nil {
		return AIEVersion{}, err
	}
	return DecodeAIEVersion(b)
}

// QueryClockMetadata asks for the MP-NPU and H clocks.
func QueryClockMetadata(q Querier) (ClockMetadata, error) {
	b, err := queryInto(q, ParamClockMetadata, int(unsafe.Sizeof(rawClockMetadata{})))
	if err != nil {
		return ClockMetadata{}, err
	}
	return DecodeClockMetadata(b)
}

// QuerySensors asks for the sensors (power, and column utilisation on newer
// kernels); the reply size says how many.
func QuerySensors(q Querier) ([]Sensor, error) {
	buf := make([]byte, 16*sizeofSensor)
	n, err := q.GetInfo(ParamSensors, buf)
	if err != nil {
		return nil, err
	}
	if n < 0 || n > len(buf) {
		return nil, fmt.Errorf("sensors: kernel reports %d bytes written into %d", n, len(buf))
	}
	return DecodeSensors(buf[:n])
}

// QueryHWContexts asks for the hardware contexts with QUERY_HW_CONTEXTS (every
// kernel since 6.14); a non-root caller sees only its own.
func QueryHWContexts(q Querier) ([]HWContext, error) {
	buf := make([]byte, maxHWContexts*sizeofQueryHWCtx)
	n, err := q.GetInfo(ParamHWContexts, buf)
	if err != nil {
		return nil, err
	}
	if n < 0 || n > len(buf) {
		return nil, fmt.Errorf("hardware contexts: kernel reports %d bytes written into %d", n, len(buf))
	}
	return DecodeHWContexts(buf[:n])
}

// QueryHWContextArray asks for every hardware context with GET_ARRAY
// HW_CONTEXT_ALL (kernels after 6.14, and AMD's out-of-tree driver).
func QueryHWContextArray(q Querier) ([]HWContext, error) {
	buf := make([]byte, maxHWContexts*sizeofHWCtxEntry)
	size, n, err := q.GetArray(ArrayHWContextAll, sizeofHWCtxEntry, buf)
	if err != nil {
		return nil, err
	}
	return DecodeHWContextArray(buf, size, n)
}

// QueryFirmwareVersion asks for the NPU firmware's version.
func QueryFirmwareVersion(q Querier) (FirmwareVersion, error) {
	b, err := queryInto(q, ParamFirmwareVersion, int(unsafe.Sizeof(rawFirmwareVersion{})))
	if err != nil {
		return FirmwareVersion{}, err
	}
	return DecodeFirmwareVersion(b)
}

// QueryPowerMode asks for the configured power mode.
func QueryPowerMode(q Querier) (PowerMode, error) {
	b, err := queryInto(q, ParamPowerMode, int(unsafe.Sizeof(rawPowerMode{})))
	if err != nil {
		return 0, err
	}
	return DecodePowerMode(b)
}

// QueryResourceInfo asks for the context limit and use, clocks and TOPS
// (kernels after 6.14).
func QueryResourceInfo(q Querier) (ResourceInfo, error) {
	b, err := queryInto(q, ParamResourceInfo, int(unsafe.Sizeof(rawResourceInfo{})))
	if err != nil {
		return ResourceInfo{}, err
	}
	return DecodeResourceInfo(b)
}
