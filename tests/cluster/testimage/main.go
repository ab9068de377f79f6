// testimage is the one binary of the test cluster's two local images:
//
//	testimage               sleep until SIGTERM/SIGINT (the pod sandbox "pause" image)
//	testimage serve ADDR [DIR]
//	                        an HTTP server for the real node's tests (routes below)
//	testimage resolve NAME  print NAME's addresses (exit 1 if it does not resolve)
//
// It is static (CGO_ENABLED=0) and uses Go's own DNS resolver, which reads the
// pod's /etc/resolv.conf as written by the kubelet, so a lookup from inside a
// pod goes through the cluster DNS exactly as any pod's would.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	args := os.Args[1:]
	if len(args) == 0 || args[0] == "pause" {
		pause()
		return
	}
	switch args[0] {
	case "serve":
		if len(args) < 2 || len(args) > 3 {
			fail("usage: testimage serve ADDR [DIR]")
		}
		dir := ""
		if len(args) == 3 {
			dir = args[2]
		}
		serve(args[1], dir)
	case "resolve":
		if len(args) != 2 {
			fail("usage: testimage resolve NAME")
		}
		addrs, err := net.LookupHost(args[1])
		if err != nil {
			fail(err.Error())
		}
		fmt.Println(strings.Join(addrs, " "))
	default:
		fail("unknown command " + args[0] + " (pause|serve|resolve)")
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "testimage:", msg)
	os.Exit(1)
}

// pause blocks until asked to stop. As a sandbox's first process it also
// reaps children re-parented to it (SIGCHLD), as a pause container must.
func pause() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			return
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}

// serve answers:
//
//	GET  /                 "testimage HOSTNAME"
//	GET  /resolve/NAME     NAME's addresses, one line, space separated (502 if none)
//	PUT  /files/NAME       writes the body to DIR/NAME and fsyncs it
//	GET  /files/NAME       reads DIR/NAME
//	GET  /apiserver        GET https://kubernetes.default.svc/api with the pod's
//	                       ServiceAccount token; answers the API server's status
//	                       code and body (proves in-cluster API access)
func serve(addr, dir string) {
	host, _ := os.Hostname()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "testimage %s\n", host)
	})
	mux.HandleFunc("GET /resolve/{name}", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		addrs, err := net.DefaultResolver.LookupHost(ctx, r.PathValue("name"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		fmt.Fprintln(w, strings.Join(addrs, " "))
	})
	mux.HandleFunc("PUT /files/{name}", func(w http.ResponseWriter, r *http.Request) {
		path, ok := inDir(w, dir, r.PathValue("name"))
		if !ok {
			return
		}
		if err := writeSynced(path, r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusCreated)
	})
	mux.HandleFunc("GET /files/{name}", func(w http.ResponseWriter, r *http.Request) {
		path, ok := inDir(w, dir, r.PathValue("name"))
		if !ok {
			return
		}
		data, err := os.ReadFile(path)
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		_, _ = w.Write(data)
	})
	mux.HandleFunc("GET /apiserver", apiserver)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
		<-sigs
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		fail(err.Error())
	}
}

// inDir maps a file name to a path in dir, refusing names that would leave it.
func inDir(w http.ResponseWriter, dir, name string) (string, bool) {
	if dir == "" {
		http.Error(w, "no directory: start with `serve ADDR DIR`", http.StatusNotFound)
		return "", false
	}
	if name == "" || name != filepath.Base(name) || name == "." || name == ".." {
		http.Error(w, "bad file name "+name, http.StatusBadRequest)
		return "", false
	}
	return filepath.Join(dir, name), true
}

func writeSynced(path string, body io.Reader) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, body); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

const saDir = "/var/run/secrets/kubernetes.io/serviceaccount"

func apiserver(w http.ResponseWriter, r *http.Request) {
	token, err := os.ReadFile(filepath.Join(saDir, "token"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	caPEM, err := os.ReadFile(filepath.Join(saDir, "ca.crt"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, "https://kubernetes.default.svc/api", nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err := client.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"status": resp.StatusCode, "body": string(body)})
}
