package amdxdna

import (
	"unsafe"
)

// Each query below wakes the NPU from runtime power management (the driver
// takes a runtime-PM reference around every GET_INFO): callers that poll
// should go through Inventory.

// maxHWContexts bounds the replies of the hardware-context queries; the
// firmware has far fewer slots (6 on Phoenix, 16 on Strix).
const maxHWContexts = 64

// queryInto runs one GET_INFO into a zeroed buffer of the struct's size and
// returns the whole buffer. The buffer_size the kernel writes back is ignored:
// for these fixed structs it is left alone or set to the struct size, and a
// kernel with a shorter struct leaves the tail zero.
func queryInto(q Querier, p Param, size int) ([]byte, error) {
	buf := make([]byte, size)
	if _, err := q.GetInfo(p, buf); err != nil {
		return nil, err
	}
	return buf, nil
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
// kernels).
func QuerySensors(q Querier) ([]Sensor, error) {
	const padOff = 162 // offsetof(struct amdxdna_drm_query_sensor, pad), 6 bytes
	b, err := queryEntries(q, ParamSensors, 16, sizeofSensor, padOff, 6)
	if err != nil {
		return nil, err
	}
	return DecodeSensors(b)
}

// QueryHWContexts asks for the hardware contexts with QUERY_HW_CONTEXTS (every
// kernel since 6.14); a non-root caller sees only its own.
func QueryHWContexts(q Querier) ([]HWContext, error) {
	const padOff = 12 // offsetof(struct amdxdna_drm_query_hwctx, pad), 4 bytes
	b, err := queryEntries(q, ParamHWContexts, maxHWContexts, sizeofQueryHWCtx, padOff, 4)
	if err != nil {
		return nil, err
	}
	return DecodeHWContexts(b)
}

// queryEntries runs a GET_INFO whose reply is an array of entries and returns
// the entries the kernel wrote. The reported buffer_size cannot say how many:
// 6.14 sets it to the size of all contexts, later kernels to the space left,
// and the sensor query leaves it alone. So the buffer is filled with 0xff
// first, and the entries written are the leading ones whose padding the kernel
// zeroed (it builds each entry in a zeroed struct).
func queryEntries(q Querier, p Param, room, size, padOff, padLen int) ([]byte, error) {
	buf := make([]byte, room*size)
	for i := range buf {
		buf[i] = 0xff
	}
	if _, err := q.GetInfo(p, buf); err != nil {
		return nil, err
	}
	n := 0
	for ; n < room; n++ {
		pad := buf[n*size+padOff : n*size+padOff+padLen]
		if !allZero(pad) {
			break
		}
	}
	return buf[:n*size], nil
}

func allZero(b []byte) bool {
	for _, v := range b {
		if v != 0 {
			return false
		}
	}
	return true
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
