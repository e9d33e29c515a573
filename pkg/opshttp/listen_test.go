package opshttp

import (
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/testproc"
)

func TestCheckListenAddress(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"127.0.0.1:5040", ":5040", "localhost:0", "[::1]:65535", "0.0.0.0:1"} {
		if err := CheckListenAddress(ok); err != nil {
			t.Errorf("CheckListenAddress(%q): got %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", "5040", "127.0.0.1", "127.0.0.1:", "127.0.0.1:http", "127.0.0.1:65536", "127.0.0.1:-1", "::1:5040", "127.0.0.1:05040", "127.0.0.1:+1"} {
		if err := CheckListenAddress(bad); err == nil {
			t.Errorf("CheckListenAddress(%q): got nil, want an error", bad)
		}
	}
}

func TestListen(t *testing.T) {
	t.Parallel()
	t.Run("free address", func(t *testing.T) {
		ln, moved, err := Listen("127.0.0.1:0", true)
		if err != nil || moved {
			t.Fatalf("got moved %v, %v; want the address itself", moved, err)
		}
		ln.Close()
	})
	t.Run("taken, may move", func(t *testing.T) {
		addr := testproc.TakenAddr(t)
		ln, moved, err := Listen(addr, true)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		got := ln.Addr().(*net.TCPAddr)
		if !moved || got.String() == addr || !got.IP.Equal(net.IPv4(127, 0, 0, 1)) {
			t.Errorf("got %s (moved %v), want another port of 127.0.0.1 than %s", got, moved, addr)
		}
	})
	t.Run("taken, fixed", func(t *testing.T) {
		addr := testproc.TakenAddr(t)
		ln, moved, err := Listen(addr, false)
		if err == nil {
			ln.Close()
			t.Fatalf("got a listener on %s (moved %v), want an error", ln.Addr(), moved)
		}
		if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), addr) {
			t.Errorf("got %v, want EADDRINUSE naming %s", err, addr)
		}
	})
	t.Run("unusable host does not move", func(t *testing.T) {
		// 192.0.2.1 (TEST-NET-1) is no address of this host: not "in use".
		ln, _, err := Listen("192.0.2.1:0", true)
		if err == nil {
			ln.Close()
			t.Fatal("got a listener, want an error")
		}
	})
}
