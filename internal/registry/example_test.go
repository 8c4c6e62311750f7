package registry_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/pyrite-dev/pyrite/internal/registry"
)

// Register a schema and read it back through the Confluent REST API, on an
// in-process Kafka cluster.
func ExampleNew() {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cluster.Close()
	reg, err := registry.New(context.Background(), cluster.ListenAddrs())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer reg.Close()
	srv := httptest.NewServer(reg.Handler())
	defer srv.Close()

	call := func(method, path, body string) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/vnd.schemaregistry.v1+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		fmt.Println(resp.StatusCode, string(b))
	}
	call("POST", "/subjects/pyrite.workeffort.Started/versions",
		`{"schema":"{\"type\":\"record\",\"name\":\"Started\",\"namespace\":\"pyrite.workeffort\",\"fields\":[{\"name\":\"id\",\"type\":\"string\"}]}"}`)
	call("GET", "/subjects/pyrite.workeffort.Started/versions/latest", "")
	call("GET", "/schemas/ids/1", "")
	call("GET", "/subjects/pyrite.workeffort.Started/versions/2", "")
	// Output:
	// 200 {"id":1,"version":1,"guid":"1c177187-a891-2571-4d96-ae195759c2dd","schema":"{\"type\":\"record\",\"name\":\"Started\",\"namespace\":\"pyrite.workeffort\",\"fields\":[{\"name\":\"id\",\"type\":\"string\"}]}"}
	// 200 {"subject":"pyrite.workeffort.Started","version":1,"id":1,"guid":"1c177187-a891-2571-4d96-ae195759c2dd","schema":"{\"type\":\"record\",\"name\":\"Started\",\"namespace\":\"pyrite.workeffort\",\"fields\":[{\"name\":\"id\",\"type\":\"string\"}]}"}
	// 200 {"guid":"1c177187-a891-2571-4d96-ae195759c2dd","schema":"{\"type\":\"record\",\"name\":\"Started\",\"namespace\":\"pyrite.workeffort\",\"fields\":[{\"name\":\"id\",\"type\":\"string\"}]}"}
	// 404 {"error_code":40402,"message":"Version 2 not found."}
}
