package compat

import "fmt"

// Readable returns every reason a decoder holding reader cannot read data written with
// writer, each naming the dotted field path as Check's messages do, e.g.
//
//	reader field "formatted" has no default and is missing in writer
//
// nil means it can. It is the one-pair form of Check's FORWARD direction, for checking a
// new writer schema against reader schemas that are not versions of the subject (the
// schemas live consumers decode with). A schema that does not parse returns an error
// wrapping ErrInvalidSchema.
func Readable(reader, writer Schema) ([]string, error) {
	r, err := parse(reader)
	if err != nil {
		return nil, fmt.Errorf("reader: %w", err)
	}
	w, err := parse(writer)
	if err != nil {
		return nil, fmt.Errorf("writer: %w", err)
	}
	var msgs []string
	for _, is := range resolve(r, w) {
		msgs = append(msgs, is.render(is.path))
	}
	return msgs, nil
}
