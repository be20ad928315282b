package kernels

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestRawEncodingObjdump checks the instructions the generator had to emit as
// raw bytes (the Go assembler cannot spell the AVX512_BF16 ones): it collects
// every BYTE line of the .s files, disassembles the bytes with GNU objdump and
// compares each instruction with the one the line's comment names.
func TestRawEncodingObjdump(t *testing.T) {
	objdump, err := exec.LookPath("objdump")
	if err != nil {
		t.Skip("GNU objdump (binutils) not installed")
	}
	files, err := filepath.Glob("*_amd64.s")
	if err != nil || len(files) == 0 {
		t.Fatalf("no assembly files: %v", err)
	}
	var code []byte
	var want []string
	byteRe := regexp.MustCompile(`BYTE \$0x([0-9a-f]{2})`)
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			line := sc.Text()
			ms := byteRe.FindAllStringSubmatch(line, -1)
			if len(ms) == 0 {
				continue
			}
			for _, m := range ms {
				b, _ := strconv.ParseUint(m[1], 16, 8)
				code = append(code, byte(b))
			}
			_, att, ok := strings.Cut(line, "// objdump: ")
			if !ok {
				t.Fatalf("%s: raw bytes without an \"// objdump: \" comment naming the instruction: %s", f, line)
			}
			want = append(want, att)
		}
		fh.Close()
	}
	if len(want) == 0 {
		t.Fatal("no raw-byte instructions found")
	}
	bin := filepath.Join(t.TempDir(), "raw.bin")
	if err := os.WriteFile(bin, code, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(objdump, "-D", "-b", "binary", "-m", "i386:x86-64", "--no-show-raw-insn", bin).CombinedOutput()
	if err != nil {
		t.Fatalf("objdump: %v\n%s", err, out)
	}
	insn := regexp.MustCompile(`^\s*[0-9a-f]+:\s+(\S+)\s+(\S+)`)
	var got []string
	for _, line := range strings.Split(string(out), "\n") {
		if m := insn.FindStringSubmatch(line); m != nil {
			got = append(got, m[1]+" "+m[2])
		}
	}
	if len(got) != len(want) {
		t.Fatalf("objdump decoded %d instructions from the raw bytes, the comments name %d:\n%s", len(got), len(want), out)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("raw instruction %d decodes as %q, comment says %q", i, got[i], want[i])
		}
	}
	t.Logf("%d raw-byte instructions decode as commented", len(want))
}
