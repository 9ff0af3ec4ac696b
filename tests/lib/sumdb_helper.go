// sumdb_helper: a real Go checksum database (golang.org/x/mod/sumdb) for
// the GoProxy test fixture (tests/lib/registry_go.py), which starts it,
// feeds it go.sum lines and relays go's /sumdb/<name>/... requests to it.
//
//	sumdb_helper -name sumdb.sluice.test
//
// prints two lines on stdout, then serves until stdin closes:
//
//	vkey <verifier key>      GOSUMDB=<name>+<verifier key> for go
//	addr 127.0.0.1:<port>    where it listens
//
// Routes: the sumdb ones (/lookup/<mod>@<ver>, /latest, /tile/...) as
// sum.golang.org serves them, and POST /add, whose body is one record (the
// go.sum lines of one module version, "<mod> <ver> h1:...\n<mod>
// <ver>/go.mod h1:...\n"), appended to the tree at once: answers its id.
// The signing key is made at start; nothing is kept on disk.
//
// Built offline by registry_go.py in GOPATH mode against Debian's
// golang-golang-x-mod-dev (GOPATH=/usr/share/gocode, GO111MODULE=off).
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// tree is a sumdb.ServerOps kept in memory whose records are added
// explicitly (sumdb.TestServer adds them on lookup instead).
type tree struct {
	signer note.Signer

	mu      sync.Mutex
	hashes  hashes
	records [][]byte
	ids     map[string]int64 // "<mod>@<ver>" -> record id
}

type hashes []tlog.Hash

func (h hashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, 0, len(indexes))
	for _, i := range indexes {
		if i < 0 || i >= int64(len(h)) {
			return nil, fmt.Errorf("no hash %d", i)
		}
		out = append(out, h[i])
	}
	return out, nil
}

// add appends one record (go.sum lines of one module version).
func (t *tree) add(data []byte) (int64, error) {
	first := strings.Fields(strings.SplitN(string(data), "\n", 2)[0])
	if len(first) != 3 {
		return 0, fmt.Errorf("bad record %q", data)
	}
	key := first[0] + "@" + first[1]
	t.mu.Lock()
	defer t.mu.Unlock()
	if id, ok := t.ids[key]; ok {
		return id, nil
	}
	id := int64(len(t.records))
	stored, err := tlog.StoredHashesForRecordHash(id, tlog.RecordHash(data), t.hashes)
	if err != nil {
		return 0, err
	}
	t.hashes = append(t.hashes, stored...)
	t.records = append(t.records, data)
	t.ids[key] = id
	return id, nil
}

func (t *tree) Signed(ctx context.Context) ([]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	size := int64(len(t.records))
	h, err := tlog.TreeHash(size, t.hashes)
	if err != nil {
		return nil, err
	}
	return note.Sign(&note.Note{Text: string(tlog.FormatTree(tlog.Tree{N: size, Hash: h}))}, t.signer)
}

func (t *tree) ReadRecords(ctx context.Context, id, n int64) ([][]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if id < 0 || id+n > int64(len(t.records)) {
		return nil, os.ErrNotExist
	}
	return append([][]byte(nil), t.records[id:id+n]...), nil
}

func (t *tree) Lookup(ctx context.Context, m module.Version) (int64, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if id, ok := t.ids[m.Path+"@"+m.Version]; ok {
		return id, nil
	}
	return 0, os.ErrNotExist
}

func (t *tree) ReadTileData(ctx context.Context, tile tlog.Tile) ([]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if tile.N<<uint(tile.H)+int64(tile.W) > int64(len(t.records))>>uint(tile.L*tile.H) {
		return nil, os.ErrNotExist // past the tree: 404, as the real one answers
	}
	return tlog.ReadTileData(tile, t.hashes)
}

func main() {
	name := flag.String("name", "sumdb.sluice.test", "the checksum database's name")
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	flag.Parse()
	skey, vkey, err := note.GenerateKey(rand.Reader, *name)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	t := &tree{signer: signer, ids: map[string]int64{}}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	srv := sumdb.NewServer(t)
	for _, p := range sumdb.ServerPaths {
		mux.Handle(p, srv)
	}
	mux.HandleFunc("/add", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		data, err := io.ReadAll(r.Body)
		if err == nil {
			var id int64
			if id, err = t.add(data); err == nil {
				fmt.Fprintf(w, "%d\n", id)
				return
			}
		}
		http.Error(w, err.Error(), http.StatusBadRequest)
	})
	fmt.Printf("vkey %s\naddr %s\n", vkey, ln.Addr())
	os.Stdout.Sync()
	go func() { // the fixture closes stdin (or dies): end with it
		io.Copy(io.Discard, bufio.NewReader(os.Stdin))
		os.Exit(0)
	}()
	if err := http.Serve(ln, mux); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
