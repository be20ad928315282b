package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	encoderv1 "github.com/xdna-whisper/xdna-whisper/api/encoder/v1"
	"github.com/xdna-whisper/xdna-whisper/cmd/internal/encodercli"
	"github.com/xdna-whisper/xdna-whisper/encoder/client"
	"github.com/xdna-whisper/xdna-whisper/encoder/npy"
)

// encodeRemote is `encode --server ADDR FILE`: FILE (audio: WAV or FLAC; or a
// log-mel .npy) is encoded by a running server — over HTTP when ADDR is an
// http:// or https:// URL, else over gRPC at host:port (EncodeStream, so audio
// longer than 30 s gives one window per 30 s). The hidden states
// [windows, positions, d_model] go to out when it is set.
func encodeRemote(ctx context.Context, remote *remoteFlags, addr string, files []string, out string) error {
	if len(files) != 1 {
		return usageError{fmt.Errorf("encode --server ADDR FILE: want exactly one FILE, got %d", len(files))}
	}
	file := files[0]
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	isNPY := strings.EqualFold(filepath.Ext(file), ".npy")
	t0 := time.Now()
	var hidden npy.Array
	var summary string
	if strings.HasPrefix(addr, "http://") || strings.HasPrefix(addr, "https://") {
		ct := "application/octet-stream"
		if isNPY {
			ct = "application/x-npy"
		}
		h, err := remote.http(addr)
		if err != nil {
			return err
		}
		r, err := h.Encode(ctx, data, ct)
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		hidden = r.Hidden
		summary = fmt.Sprintf("model %s, %.2f s of audio, server timing %s", r.ModelKey, r.AudioSeconds, r.ServerTiming)
	} else {
		hidden, summary, err = encodeGRPC(ctx, remote, addr, data, isNPY)
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
	}
	if out != "" {
		if err := encodercli.WriteNPY(out, hidden); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "%s → %v via %s in %v (%s)\n", file, hidden.Shape, addr, time.Since(t0).Round(time.Millisecond), summary)
	return nil
}

// encodeGRPC streams data's windows and stacks them into [windows, positions, d_model].
func encodeGRPC(ctx context.Context, remote *remoteFlags, addr string, data []byte, isNPY bool) (npy.Array, string, error) {
	c, err := remote.dial(addr)
	if err != nil {
		return npy.Array{}, "", err
	}
	defer c.Close()
	req := client.AudioRequest(data, encoderv1.AudioFormat_AUDIO_FORMAT_UNSPECIFIED, 0)
	if isNPY {
		a, err := npy.Read(bytes.NewReader(data), 0)
		if err != nil {
			return npy.Array{}, "", err
		}
		if req, err = client.LogMelRequest(a); err != nil {
			return npy.Array{}, "", err
		}
	}
	var (
		stacked npy.Array
		audio   float64
		key     string
		compute time.Duration
	)
	err = c.EncodeStream(ctx, req, func(w client.Window) error {
		if len(w.Hidden.Shape) != 3 {
			return fmt.Errorf("window %d: shape %v, want [1, positions, d_model]", w.Index, w.Hidden.Shape)
		}
		if stacked.Shape == nil {
			stacked.Shape = []int{0, w.Hidden.Shape[1], w.Hidden.Shape[2]}
		}
		stacked.Shape[0]++
		stacked.Data = append(stacked.Data, w.Hidden.Data...)
		audio += w.AudioSeconds
		key = w.ModelKey
		compute += w.Compute
		return nil
	})
	if err != nil {
		return npy.Array{}, "", err
	}
	if stacked.Shape == nil {
		return npy.Array{}, "", errors.New("server returned no windows")
	}
	return stacked, fmt.Sprintf("model %s, %.2f s of audio, compute %v", key, audio, compute.Round(time.Millisecond)), nil
}
