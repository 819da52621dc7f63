// Command etcd is etcd's server, built from go.etcd.io/etcd/server/v3 at the version the
// Kubernetes release of this module requires (its own go.mod has replace directives, so it
// cannot be `go install`ed).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
