//go:build tools

// Package tools pins JobSet's manager (the module root's main package): `go install ...@v0.12.0`
// cannot be used because the module proxy refuses sigs.k8s.io/jobset's version list, which
// `go install` reads for deprecations. Requiring only JobSet, this module resolves exactly the
// dependency versions of JobSet's own go.mod.
package tools

import _ "sigs.k8s.io/jobset"
