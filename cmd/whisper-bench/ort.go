package main

// The ONNX Runtime side of the encoder A/B (node testdata/ort/bench.js) and
// the round-robin that times several sides on the same input.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/xdna-whisper/xdna-whisper/cmd/internal/encodercli"
	"github.com/xdna-whisper/xdna-whisper/encoder/model"
	"github.com/xdna-whisper/xdna-whisper/encoder/npy"
)

// ortProc is a running bench.js: one ONNX Runtime session on one input.
type ortProc struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	lines   *bufio.Scanner
	dir     string
	version string
}

// startORT writes mel where bench.js reads it and starts bench.js on model
// with threads intra-op threads; it returns once the session is loaded.
func startORT(ctx context.Context, onnxModel, script string, mel model.Tensor, threads int) (*ortProc, error) {
	dir, err := os.MkdirTemp("", "bench-ort-")
	if err != nil {
		return nil, err
	}
	o := &ortProc{dir: dir}
	inPath := filepath.Join(dir, "in.npy")
	if err := encodercli.WriteNPY(inPath, npy.Array{Shape: mel.Shape, Data: mel.Data}); err != nil {
		_ = os.RemoveAll(dir) // best effort: a temporary directory
		return nil, err
	}
	o.cmd = exec.CommandContext(ctx, "node", script, "--model", onnxModel, "--in", inPath, "--threads", strconv.Itoa(threads))
	o.cmd.Stderr = os.Stderr
	if o.stdin, err = o.cmd.StdinPipe(); err != nil {
		_ = os.RemoveAll(dir) // best effort: a temporary directory
		return nil, err
	}
	stdout, err := o.cmd.StdoutPipe()
	if err != nil {
		_ = os.RemoveAll(dir) // best effort: a temporary directory
		return nil, err
	}
	if err := o.cmd.Start(); err != nil {
		_ = os.RemoveAll(dir) // best effort: a temporary directory
		return nil, fmt.Errorf("start onnxruntime-node (%s): %w", script, err)
	}
	o.lines = bufio.NewScanner(stdout)
	ready, err := o.ask("")
	if err != nil {
		o.close()
		return nil, err
	}
	o.version = strings.TrimPrefix(ready, "ready ")
	return o, nil
}

// ask sends req (unless empty) and returns the next line bench.js prints.
func (o *ortProc) ask(req string) (string, error) {
	if req != "" {
		if _, err := fmt.Fprintln(o.stdin, req); err != nil {
			return "", fmt.Errorf("onnxruntime-node: %w", err)
		}
	}
	if !o.lines.Scan() {
		return "", fmt.Errorf("onnxruntime-node exited (%v)", o.lines.Err())
	}
	return o.lines.Text(), nil
}

// run times one forward pass: wall and process CPU milliseconds, as
// bench.js measured them ("ms WALL cpu CPU").
func (o *ortProc) run() (wall, cpu float64, err error) {
	resp, err := o.ask("run")
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(resp)
	if len(f) != 4 || f[0] != "ms" || f[2] != "cpu" {
		return 0, 0, fmt.Errorf("onnxruntime-node said %q, want \"ms WALL cpu CPU\"", resp)
	}
	if wall, err = strconv.ParseFloat(f[1], 64); err == nil {
		cpu, err = strconv.ParseFloat(f[3], 64)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("onnxruntime-node said %q: %w", resp, err)
	}
	return wall, cpu, nil
}

// output runs once more and reads ONNX Runtime's last_hidden_state.
func (o *ortProc) output() (npy.Array, error) {
	path := filepath.Join(o.dir, "ort.npy")
	if resp, err := o.ask("out " + path); err != nil || resp != "ok" {
		return npy.Array{}, fmt.Errorf("onnxruntime-node output: %q %v", resp, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return npy.Array{}, err
	}
	defer f.Close()
	return npy.Read(f, 1<<30)
}

// close asks bench.js to quit, waits for it and removes its files.
func (o *ortProc) close() {
	// Best effort: the figures are taken, or the run already failed.
	fmt.Fprintln(o.stdin, "quit")
	_ = o.stdin.Close()
	_ = o.cmd.Wait()
	_ = os.RemoveAll(o.dir)
}

// side is one contestant of a round-robin: a name, a timed run, and the
// wall and CPU milliseconds of its rounds.
type side struct {
	name      string
	run       func() (wall, cpu float64, err error)
	wall, cpu []float64
}

// side names ORT by its package and version ("onnxruntime-node 1.30.0").
func (o *ortProc) side() *side {
	f := strings.Fields(o.version)
	return &side{name: strings.Join(f[:min(2, len(f))], " "), run: o.run}
}

// goSide times enc on mel: wall time and this process's CPU time (the ORT
// process is idle meanwhile).
func goSide(ctx context.Context, enc *model.Encoder, mel model.Tensor) *side {
	out := make([]float32, mel.Shape[0]*enc.Config().MaxSourcePositions*enc.Config().DModel)
	return &side{name: enc.Backend(), run: func() (float64, float64, error) {
		c0, t0 := processCPU(), time.Now()
		err := enc.EncodeInto(ctx, out, mel)
		return ms(time.Since(t0)), ms(processCPU() - c0), err
	}}
}

// warmUp runs every side once, untimed.
func warmUp(sides []*side) error {
	for _, s := range sides {
		if _, _, err := s.run(); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return nil
}

// alternate runs rounds rounds of every side; each round starts one side
// further on, so no side always follows the same other one.
func alternate(sides []*side, rounds int) error {
	for r := range rounds {
		for i := range sides {
			s := sides[(r+i)%len(sides)]
			w, c, err := s.run()
			if err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			s.wall, s.cpu = append(s.wall, w), append(s.cpu, c)
		}
	}
	return nil
}
