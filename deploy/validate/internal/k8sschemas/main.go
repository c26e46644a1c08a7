// Command k8sschemas vendors Kubernetes JSON schemas for kubeconform from the
// PyPI package kubernetes-validate, which ships the schemas of every
// Kubernetes release (kubernetes-json-schema/<version>-local-strict/: one
// file per kind plus _definitions.json, which they $ref). kubeconform loads a
// schema from a local file but fetches a $ref that points elsewhere over
// HTTP, which is not reachable here; so each kind is written standalone: its
// schema with the definitions it needs (transitively) under $defs and every
// $ref made local. Nothing else changes.
//
//	go run ./validate/internal/k8sschemas -wheel kubernetes_validate-1.37.0-py3-none-any.whl \
//	    -version v1.37.0 -out validate/testdata/schemas/kubernetes statefulset-apps-v1 ...
//
// deploy/validate/testdata/update-schemas.sh runs it.
package main

import (
	"archive/zip"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

const extRef = "/api/_definitions.json#/$defs/"

func main() {
	wheel := flag.String("wheel", "", "kubernetes_validate wheel (.whl)")
	version := flag.String("version", "v1.37.0", "Kubernetes version directory in the wheel")
	out := flag.String("out", "", "output directory (a <version>-standalone-strict directory is made in it)")
	flag.Parse()
	if *wheel == "" || *out == "" || flag.NArg() == 0 {
		log.Fatal("usage: k8sschemas -wheel W -version V -out DIR kind-group-version ...")
	}
	zr, err := zip.OpenReader(*wheel)
	if err != nil {
		log.Fatal(err)
	}
	defer zr.Close()
	dir := "kubernetes_validate/kubernetes-json-schema/" + *version + "-local-strict/"
	read := func(name string) map[string]any {
		f, err := zr.Open(dir + name)
		if err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		b, err := io.ReadAll(f)
		if err != nil {
			log.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			log.Fatalf("%s: %v", name, err)
		}
		return m
	}
	defs := read("_definitions.json")["$defs"].(map[string]any)
	dst := filepath.Join(*out, *version+"-standalone-strict")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		log.Fatal(err)
	}
	for _, kind := range flag.Args() {
		s := read(kind + ".json")
		need := map[string]bool{}
		var walk func(v any)
		walk = func(v any) {
			switch v := v.(type) {
			case map[string]any:
				if r, ok := v["$ref"].(string); ok {
					name := strings.TrimPrefix(strings.TrimPrefix(r, extRef), "#/$defs/")
					if name == r {
						log.Fatalf("%s: unexpected $ref %q", kind, r)
					}
					v["$ref"] = "#/$defs/" + name
					if !need[name] {
						need[name] = true
						d, ok := defs[name]
						if !ok {
							log.Fatalf("%s: no definition %s", kind, name)
						}
						walk(d)
					}
				}
				for _, x := range v {
					walk(x)
				}
			case []any:
				for _, x := range v {
					walk(x)
				}
			}
		}
		walk(s)
		names := make([]string, 0, len(need))
		for n := range need {
			names = append(names, n)
		}
		sort.Strings(names)
		sub := map[string]any{}
		for _, n := range names {
			sub[n] = defs[n]
		}
		s["$defs"] = sub
		delete(s, "$id") // local refs resolve against the file itself
		b, err := json.MarshalIndent(s, "", " ")
		if err != nil {
			log.Fatal(err)
		}
		p := filepath.Join(dst, kind+".json")
		if err := os.WriteFile(p, append(b, '\n'), 0o644); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s: %d definitions, %d bytes\n", p, len(names), len(b))
	}
}
