// Command demobackend is the small HTTP backend of the local system: it answers
// 200 to every POST and prints one line per request (method, path and query, body
// size, and the msgpack map's method and key when the body is one), so a person
// can watch ktransfer's pushes arrive. It listens on loopback only.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/kafka-http-wrapper/kafka-http-wrapper/pkg/opshttp"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "loopback `address` to listen on")
	flag.Parse()
	host, _, err := net.SplitHostPort(*listen)
	if err != nil || !net.ParseIP(host).IsLoopback() {
		fmt.Fprintf(os.Stderr, "demobackend: -listen %q must be a loopback HOST:PORT\n", *listen)
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demobackend:", err)
		os.Exit(1)
	}
	var n atomic.Int64
	srv := opshttp.NewServer(ln.Addr().String(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		var v struct {
			Method string `msgpack:"method"`
			Key    string `msgpack:"key"`
		}
		desc := ""
		if msgpack.Unmarshal(body, &v) == nil {
			desc = fmt.Sprintf(" method=%s key=%s", v.Method, v.Key)
		}
		log.Printf("#%d %s %s %d bytes%s", n.Add(1), r.Method, r.URL.RequestURI(), len(body), desc)
		w.WriteHeader(http.StatusOK)
	}), opshttp.DefaultLimits())
	log.SetFlags(log.Ltime | log.Lmicroseconds)
	log.Printf("demobackend listening on %s", ln.Addr())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sigs
		srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
