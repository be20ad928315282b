package convert

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/onnx"
)

// microShape is hf-micro's decoder shape (its config.json).
var microShape = decoderShape{d: 64, layers: 2, ffn: 256, vocab: 1864, maxTarget: 448}

func openMicroONNX(t *testing.T, name string) *onnx.Model {
	t.Helper()
	m, err := onnx.Open(filepath.Join(microDir, "onnx", name))
	must(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

// byName maps a plan's tensors by staged name.
func byName(s *staging) map[string]*weight {
	out := map[string]*weight{}
	for _, w := range s.weights {
		out[w.name] = w
	}
	return out
}

// anonymize renames every initializer, value and node of g (outer graph
// values too) to names that say nothing, keeping graph inputs and outputs.
func anonymize(g *onnx.Graph) {
	rename := map[string]string{}
	for i, t := range g.Initializers {
		rename[t.Name] = fmt.Sprintf("w%d", i)
		t.Name = rename[t.Name]
	}
	for i := range g.Nodes {
		n := &g.Nodes[i]
		n.Name = ""
		for k, o := range n.Outputs {
			if _, ok := rename[o]; !ok {
				rename[o] = fmt.Sprintf("v%d_%d", i, k)
			}
			n.Outputs[k] = rename[o]
		}
		for k, in := range n.Inputs {
			if r, ok := rename[in]; ok {
				n.Inputs[k] = r
			}
		}
	}
}

// Names are recorded, not trusted: with every initializer, value and node
// renamed, the structure maps each tensor to the same initializer; with
// two projections' weights swapped, each name follows its node's role.
func TestDecoderStructure(t *testing.T) {
	m := openMicroONNX(t, "decoder_model.onnx")
	want, err := planDecoder(m, microShape, "decoder_model.onnx")
	must(t, err)
	ref := byName(want)
	// swap the weights of layer 1's self-attention q_proj and v_proj
	q, v := ref["layers.1.self_attn.q_proj.weight"], ref["layers.1.self_attn.v_proj.weight"]
	for i := range m.Graph.Nodes {
		n := &m.Graph.Nodes[i]
		if n.Name == q.node {
			n.Inputs[1] = v.tensor.Name
		} else if n.Name == v.node {
			n.Inputs[1] = q.tensor.Name
		}
	}
	tensors := map[string]*onnx.Tensor{}
	for name, w := range ref {
		tensors[name] = w.tensor
	}
	tensors["layers.1.self_attn.q_proj.weight"], tensors["layers.1.self_attn.v_proj.weight"] = v.tensor, q.tensor
	anonymize(&m.Graph)
	got, err := planDecoder(m, microShape, "decoder_model.onnx")
	must(t, err)
	for name, w := range byName(got) {
		if w.tensor != tensors[name] {
			t.Errorf("%s: initializer %s, want the one %s held", name, w.tensor.Name, tensors[name].Name)
		}
		if w.node != "" && !strings.HasPrefix(w.node, "/fp16") {
			t.Errorf("%s: node %q after renaming", name, w.node)
		}
	}
	if len(got.weights) != len(want.weights) {
		t.Errorf("%d tensors, want %d", len(got.weights), len(want.weights))
	}
}

// A merged decoder whose branches use different values for one tensor is
// refused, naming the tensor and both branches.
func TestDecoderMergedDisagree(t *testing.T) {
	m := openMicroONNX(t, "decoder_model_merged.onnx")
	then, _ := m.Graph.Nodes[0].Attr("then_branch")
	plan, err := planDecoder(m, microShape, "decoder_model_merged.onnx")
	must(t, err)
	ref := byName(plan)
	a, b := ref["layers.0.fc2.bias"].tensor.Name, ref["layers.1.fc2.bias"].tensor.Name
	swapped := 0
	for i := range then.G.Nodes {
		for k, in := range then.G.Nodes[i].Inputs {
			if in == a {
				then.G.Nodes[i].Inputs[k] = b
				swapped++
			}
		}
	}
	if swapped == 0 {
		t.Fatalf("the with-past branch does not use %s", a)
	}
	_, err = planDecoder(m, microShape, "decoder_model_merged.onnx")
	if err == nil || !strings.Contains(err.Error(), "layers.0.fc2.bias") || !strings.Contains(err.Error(), "disagree") {
		t.Fatalf("branches with different fc2 biases: %v, want a disagreement on layers.0.fc2.bias", err)
	}
	t.Log(err)
}

// Decoders with quantized operators, a wrong shape in config.json, or an
// untied output projection are refused by name.
func TestDecoderRefused(t *testing.T) {
	m := openMicroONNX(t, "decoder_model.onnx")
	shape := microShape
	shape.ffn = 128
	if _, err := planDecoder(m, shape, "decoder_model.onnx"); err == nil || !strings.Contains(err.Error(), "fc1.weight") || !strings.Contains(err.Error(), "[128 64]") {
		t.Errorf("decoder_ffn_dim 128: %v, want fc1's shape mismatch", err)
	}
	shape = microShape
	shape.layers = 3
	if _, err := planDecoder(m, shape, "decoder_model.onnx"); err == nil || !strings.Contains(err.Error(), "layers.2") {
		t.Errorf("3 layers: %v, want an error at layers.2", err)
	}
	for i := range m.Graph.Nodes {
		if n := &m.Graph.Nodes[i]; n.OpType == "MatMul" && strings.Contains(n.Name, "fc1") {
			n.OpType = "MatMulInteger"
			break
		}
	}
	if _, err := planDecoder(m, microShape, "decoder_model.onnx"); err == nil || !strings.Contains(err.Error(), "MatMulInteger") || !strings.Contains(err.Error(), "quantized") {
		t.Errorf("MatMulInteger: %v, want a quantized refusal", err)
	}
	fused := openMicroONNX(t, "decoder_model.onnx")
	fused.Graph.Nodes = append(fused.Graph.Nodes, onnx.Node{Name: "/fused/sln", OpType: "SkipLayerNormalization", Domain: "com.microsoft"})
	if _, err := planDecoder(fused, microShape, "decoder_model.onnx"); err == nil || !strings.Contains(err.Error(), `"/fused/sln"`) || !strings.Contains(err.Error(), "optimized") {
		t.Errorf("SkipLayerNormalization: %v, want a fused-operator refusal", err)
	}
}

// A logits weight that is not the token embedding transposed, in one value,
// is refused as an untied output projection.
func TestDecoderUntied(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(microDir, "onnx", "decoder_model.onnx"))
	must(t, err)
	m, err := onnx.Parse(b)
	must(t, err)
	var w *onnx.Tensor
	for _, tn := range m.Graph.Initializers {
		if slices.Equal(tn.Shape(), []int{microShape.d, microShape.vocab}) {
			w = tn
		}
	}
	if w == nil {
		t.Fatal("no [64 1864] logits weight in decoder_model.onnx")
	}
	raw, ok, err := m.Bytes(w)
	if !ok || err != nil {
		t.Fatalf("logits weight %s: not raw bytes (%v)", w.Name, err)
	}
	raw[4*(3*microShape.vocab+5)] ^= 1 // [3, 5]: embed_tokens[5, 3] in the last mantissa bit
	_, err = planDecoder(m, microShape, "decoder_model.onnx")
	if err == nil || !strings.Contains(err.Error(), "untied") || !strings.Contains(err.Error(), "[3 5]") {
		t.Fatalf("a logits weight off in one bit: %v, want an untied-projection error at [3 5]", err)
	}
}

// fixtureCache is where make hf-fixture-SIZE writes the real-vocabulary
// fixtures ($XDNA_CACHE/fixtures, as the Makefile defaults it).
func fixtureCache() string {
	if c := os.Getenv("XDNA_CACHE"); c != "" {
		return filepath.Join(c, "fixtures")
	}
	return "/var/cache/xdna-whisper/fixtures"
}

// On the generated real-vocabulary fixtures (when present: make
// hf-fixture-base in $XDNA_CACHE/fixtures, make test-transcribe's tiny and
// tiny.en in testdata/bench), every decoder tensor mapped from the merged
// and the no-past export converts to exactly the BF16 of
// model.safetensors' tensor.
func TestDecoderFixtures(t *testing.T) {
	for _, dir := range []string{filepath.Join(fixtureCache(), "hf-base"), "../../testdata/bench/hf-tiny", "../../testdata/bench/hf-tiny-en"} {
		size := filepath.Base(dir)
		for _, file := range []string{"decoder_model_merged.onnx", "decoder_model.onnx"} {
			t.Run(size+"/"+file, func(t *testing.T) {
				if _, err := os.Stat(filepath.Join(dir, "onnx", file)); err != nil {
					t.Skipf("no %s (make hf-fixture-base, make transcribe-fixtures): %v", file, err)
				}
				cfg, err := os.ReadFile(filepath.Join(dir, "config.json"))
				must(t, err)
				enc, dec, err := parseRepoConfig(cfg)
				must(t, err)
				shape := decoderShape{d: enc.DModel, layers: dec.Layers, ffn: dec.FFN, vocab: dec.Vocab, maxTarget: dec.MaxTargetPositions}
				m, err := onnx.Open(filepath.Join(dir, "onnx", file))
				must(t, err)
				defer m.Close()
				p, err := planDecoder(m, shape, file)
				must(t, err)
				w, err := openRepoWeights(dir, []string{repoWeights})
				must(t, err)
				defer w.close()
				var buf buffers
				for _, wt := range p.weights {
					src := w.tensor("model.decoder." + wt.name)
					want := make([]uint16, len(src.Data)/4)
					toBF16Values(want, src)
					got := make([]uint16, len(want))
					if _, err := convert(m, wt, got, &buf); err != nil {
						t.Fatal(err)
					}
					if !slices.Equal(got, want) {
						t.Errorf("%s (%s) differs from model.decoder.%s", wt.name, wt.describe(), wt.name)
					}
				}
				t.Logf("%s %s: %d decoder tensors equal (d %d, %d layers, vocab %d)", size, file, len(p.weights), shape.d, shape.layers, shape.vocab)
			})
		}
	}
}

// Logits through a Transpose node of the embedding itself are tied; through
// a Transpose of another table they are refused.
func TestDecoderTransposedLogits(t *testing.T) {
	m := openMicroONNX(t, "decoder_model.onnx")
	var logits *onnx.Node
	for i := range m.Graph.Nodes {
		if n := &m.Graph.Nodes[i]; n.OpType == "MatMul" && len(n.Outputs) == 1 && n.Outputs[0] == "logits" {
			logits = n
		}
	}
	if logits == nil {
		t.Fatal("no MatMul producing logits")
	}
	logits.Inputs[1] = "embT"
	m.Graph.Nodes = append(m.Graph.Nodes, onnx.Node{Name: "/t/Transpose", OpType: "Transpose",
		Inputs: []string{"model.decoder.embed_tokens.weight"}, Outputs: []string{"embT"}})
	if _, err := planDecoder(m, microShape, "decoder_model.onnx"); err != nil {
		t.Fatalf("logits through Transpose(embed_tokens): %v", err)
	}
	m.Graph.Nodes[len(m.Graph.Nodes)-1].Inputs[0] = "model.decoder.embed_positions.weight"
	_, err := planDecoder(m, microShape, "decoder_model.onnx")
	if err == nil || !strings.Contains(err.Error(), "untied") || !strings.Contains(err.Error(), "embed_positions") {
		t.Fatalf("logits through Transpose(embed_positions): %v, want an untied refusal", err)
	}
}
