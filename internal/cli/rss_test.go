package cli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"faas/samples"
)

// TestBatchPeakRSS measures the peak RSS of a real `faas batch` process running inputs
// through a function on a real Redis, local dispatcher and server. It is a measurement, not
// run by default:
//
//	FAAS_BATCH_RSS=100000 go test -run TestBatchPeakRSS -v ./internal/cli/
//
// (the value is the number of inputs). Figures go to docs/BENCHMARKS.md, "## Batch".
func TestBatchPeakRSS(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("FAAS_BATCH_RSS"))
	if n <= 0 {
		t.Skip("set FAAS_BATCH_RSS=<number of inputs> to measure the peak RSS of faas batch")
	}
	bin := filepath.Join(t.TempDir(), "faas")
	build := exec.Command("go", "build", "-o", bin, "faas/cmd/faas")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	url := startPlatform(t)
	cliOK(t, url, "", 0, "register", "double", writeFile(t, "double.wasm", samples.DoubleWAT))

	var in strings.Builder
	for i := range n {
		fmt.Fprintf(&in, "%d\n", i)
	}
	inputs := writeFile(t, "inputs.jsonl", []byte(in.String()))
	in.Reset()
	outPath := filepath.Join(t.TempDir(), "out.jsonl")
	outFile, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "batch", "double", "--inputs", inputs, "--quiet", "--server", url)
	cmd.Stdout = outFile
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("faas batch: %v\n%s", err, stderr.String())
	}
	elapsed := time.Since(start)
	outFile.Close()
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	f, err := os.Open(outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	checkBatchOutput(t, f, n, 0, -1)
	t.Logf("faas batch, %d inputs: %v (%.0f tasks/s), peak RSS %.1f MiB, user %v sys %v",
		n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), float64(ru.Maxrss)/1024,
		time.Duration(ru.Utime.Nano()).Round(time.Millisecond), time.Duration(ru.Stime.Nano()).Round(time.Millisecond))
}
