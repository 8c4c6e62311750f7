package store

import "testing"

func TestRenameCreateTable(t *testing.T) {
	tests := []struct {
		name, ddl, want string
		err             bool
	}{
		{name: "as created", ddl: "CREATE TABLE work_efforts (\n    id TEXT)", want: "CREATE TABLE work_efforts_rebuild (\n    id TEXT)"},
		{name: "renamed by SQLite", ddl: `CREATE TABLE "work_efforts" (id TEXT)`, want: "CREATE TABLE work_efforts_rebuild (id TEXT)"},
		{name: "no space before the columns", ddl: "create table work_efforts(id TEXT)", want: "CREATE TABLE work_efforts_rebuild(id TEXT)"},
		{name: "another table with the name as prefix", ddl: "CREATE TABLE work_efforts_old (id TEXT)", err: true},
		{name: "not a table", ddl: "CREATE VIEW work_efforts AS SELECT 1", err: true},
		{name: "empty", ddl: "", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := renameCreateTable(tt.ddl, "work_efforts", "work_efforts_rebuild")
			if (err != nil) != tt.err || got != tt.want {
				t.Errorf("renameCreateTable = %q, %v; want %q (error %v)", got, err, tt.want, tt.err)
			}
		})
	}
}
