package main

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"syscall"

	"github.com/spf13/cobra"
)

// For the developers: profiles of one command (go tool pprof), behind
// hidden global flags. --cpuprofile FILE profiles the CPU from the
// command's start to its end. --memprofile FILE writes the heap profile
// (after a garbage collection) to FILE when the command ends normally (a
// run that abandons its work after SIGTERM exits without one) and, while
// it runs, to FILE.1, FILE.2, ... each time the process gets SIGUSR1: a
// long-running `postfach run` can be asked for its heap at its peak.
// Each also goes to FILE[.N].txt as text, with the runtime's MemStats.
// --trace FILE writes an execution trace (go tool trace) of the command
// from its start to its end: where the goroutines waited, and for what.
func addProfileFlags(root *cobra.Command, g *globals) {
	root.PersistentFlags().StringVar(&g.cpuProfile, "cpuprofile", "", "write a CPU profile to `file`")
	root.PersistentFlags().MarkHidden("cpuprofile")
	root.PersistentFlags().StringVar(&g.memProfile, "memprofile", "", "write a heap profile to `file` at the end (and to file.N on SIGUSR1)")
	root.PersistentFlags().MarkHidden("memprofile")
	root.PersistentFlags().StringVar(&g.traceFile, "trace", "", "write an execution trace to `file`")
	root.PersistentFlags().MarkHidden("trace")
	var cpu, tr *os.File
	var usr1 chan os.Signal
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		if g.memProfile != "" {
			usr1 = make(chan os.Signal, 1)
			signal.Notify(usr1, syscall.SIGUSR1)
			go func() {
				n := 0
				for range usr1 {
					n++
					writeHeapProfile(fmt.Sprintf("%s.%d", g.memProfile, n))
				}
			}()
		}
		if g.traceFile != "" {
			f, err := os.Create(g.traceFile)
			if err != nil {
				return err
			}
			tr = f
			if err := trace.Start(f); err != nil {
				return err
			}
		}
		if g.cpuProfile == "" {
			return nil
		}
		f, err := os.Create(g.cpuProfile)
		if err != nil {
			return err
		}
		cpu = f
		return pprof.StartCPUProfile(f)
	}
	root.PersistentPostRun = func(*cobra.Command, []string) {
		if tr != nil {
			trace.Stop()
			tr.Close()
		}
		if cpu != nil {
			pprof.StopCPUProfile()
			cpu.Close()
		}
		if usr1 != nil {
			signal.Stop(usr1)
			writeHeapProfile(g.memProfile)
		}
	}
}

// writeHeapProfile writes the heap profile to path, through a temporary
// file so that a reader never sees half of one; it fails silently (a
// developer's tool: the file is just not there).
func writeHeapProfile(path string) {
	runtime.GC()
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return
	}
	err = pprof.Lookup("heap").WriteTo(f, 0)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return
	}
	os.Rename(tmp, path)
	// The same as text, with the runtime's memory statistics (how much
	// of the process's memory Go holds, and how).
	if f, err := os.Create(path + ".txt"); err == nil {
		pprof.Lookup("heap").WriteTo(f, 1)
		f.Close()
	}
}
