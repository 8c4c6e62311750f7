package compat_test

import (
	"fmt"

	"github.com/pyrite-dev/pyrite/internal/compat"
)

func Example_check() {
	v1 := compat.Schema{Text: `{"type":"record","name":"pyrite.workeffort.Created","fields":[
		{"name":"id","type":"string"},
		{"name":"n","type":{"type":"record","name":"Note","fields":[{"name":"x","type":"int"}]}}]}`}
	v2 := compat.Schema{Text: `{"type":"record","name":"pyrite.workeffort.Created","fields":[
		{"name":"id","type":"string"},
		{"name":"n","type":{"type":"record","name":"Note","fields":[{"name":"x","type":"long"},{"name":"y","type":"int"}]}}]}`}

	msgs, err := compat.Check(compat.Backward, v2, []compat.Schema{v1})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, m := range msgs {
		fmt.Println(m)
	}
	// Output:
	// backward: new schema cannot read data written by existing[0]: reader field "n.y" has no default and is missing in writer
}
