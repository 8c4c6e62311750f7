package domain_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// testSupport are the packages that may import domain modules although they are not one:
// test scaffolding that starts the seed's stack.
var testSupport = []string{"internal/stacktest", "internal/reactor/reactortest", "internal/crashtest"}

// debts are the imports of domain modules by generic packages that the restructuring has not
// removed yet: none are left. The check fails on any other such import, and on a debt that
// is paid (so that this list only shrinks).
var debts = []string{}

// domainImports lists, for the module in dir, every direct non-test import of a package under
// <module>/internal/domain by another package under internal/, as "pkg -> imported" with the
// module path trimmed. The mains (cmd/...) wire the modules and may; test support is left out.
func domainImports(t *testing.T, dir string) []string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command(goBin, "list", "-f", "{{.Module.Path}}|{{.ImportPath}}|{{join .Imports \" \"}}", "./...")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("go list in %s: %v\n%s", dir, err, stderr)
	}
	var found []string
	for line := range strings.Lines(strings.TrimSpace(string(out))) {
		parts := strings.SplitN(strings.TrimSpace(line), "|", 3)
		if len(parts) != 3 {
			t.Fatalf("go list printed %q", line)
		}
		mod, pkg := parts[0]+"/", strings.TrimPrefix(parts[1], parts[0]+"/")
		if !strings.HasPrefix(pkg, "internal/") || isDomain(pkg) || slices.Contains(testSupport, pkg) {
			continue
		}
		for imp := range strings.FieldsSeq(parts[2]) {
			if rel, ok := strings.CutPrefix(imp, mod); ok && isDomain(rel) {
				found = append(found, pkg+" -> "+rel)
			}
		}
	}
	slices.Sort(found)
	return found
}

// isDomain reports whether pkg (module-relative) is the domain seam or a domain module.
func isDomain(pkg string) bool {
	return pkg == "internal/domain" || strings.HasPrefix(pkg, "internal/domain/")
}

// TestGenericPackagesImportNoDomain fails when a package outside internal/domain (store,
// eventstore, projector, upcast, upcaster, bus, ingest, ...) imports a domain module or the
// seam itself: dependencies point from the modules to the machinery, and the mains wire.
func TestGenericPackagesImportNoDomain(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	got := domainImports(t, root)
	for _, imp := range got {
		if !slices.Contains(debts, imp) {
			t.Errorf("generic package imports a domain package: %s (hand it to the generic package from the module through the mains instead)", imp)
		}
	}
	for _, d := range debts {
		if !slices.Contains(got, d) {
			t.Errorf("debt %q is paid: remove it from the debts list", d)
		}
	}
}

// TestDependencyCheckCatchesAnImport proves the check on a module of its own: a generic
// package importing a domain module is reported, the module importing the machinery is not.
func TestDependencyCheckCatchesAnImport(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/m\n\ngo 1.24\n")
	write("internal/domain/invoice/invoice.go", "package invoice\n\nimport _ \"example.com/m/internal/eventstore\"\n")
	write("internal/eventstore/eventstore.go", "package eventstore\n")
	write("internal/store/store.go", "package store\n")
	write("cmd/app/main.go", "package main\n\nimport _ \"example.com/m/internal/domain/invoice\"\n\nfunc main() {}\n")
	if got := domainImports(t, dir); len(got) != 0 {
		t.Fatalf("clean module: reported %v", got)
	}
	write("internal/store/store.go", "package store\n\nimport _ \"example.com/m/internal/domain/invoice\"\n")
	got := domainImports(t, dir)
	if want := []string{"internal/store -> internal/domain/invoice"}; !slices.Equal(got, want) {
		t.Fatalf("generic store importing a module: reported %v, want %v", got, want)
	}
}
