package registry

import (
	"errors"
	"testing"

	"github.com/riferrei/srclient"
)

// TestSRClientInterop drives the registry with github.com/riferrei/srclient,
// a client written against Confluent's registry.
func TestSRClientInterop(t *testing.T) {
	c := newCluster(t)
	tr := startRegistry(t, c)
	client := srclient.NewSchemaRegistryClient(tr.srv.URL)
	client.CachingEnabled(false)
	const subject = "pyrite.workeffort.ProgressUpdated"
	v1 := `{"type":"record","name":"ProgressUpdated","namespace":"pyrite.workeffort",
		"fields":[{"name":"oldProgress","type":"int"},{"name":"newProgress","type":"int"}]}`
	v2 := `{"type":"record","name":"ProgressUpdated","namespace":"pyrite.workeffort",
		"fields":[{"name":"oldProgress","type":"int"},{"name":"newProgress","type":"int"},{"name":"delta","type":"int","default":0}]}`
	bad := `{"type":"record","name":"ProgressUpdated","namespace":"pyrite.workeffort",
		"fields":[{"name":"oldProgress","type":"int"},{"name":"newProgress","type":"int"},{"name":"formatted","type":"string"}]}`

	created, err := client.CreateSchema(subject, v1, srclient.Avro)
	if err != nil {
		t.Fatalf("CreateSchema v1: %v", err)
	}
	if created.ID() != 1 {
		t.Errorf("CreateSchema v1: id %d, want 1", created.ID())
	}
	if created.Codec() == nil {
		t.Error("CreateSchema v1: the client could not build a codec from the stored schema")
	}
	again, err := client.CreateSchema(subject, v1, srclient.Avro)
	if err != nil || again.ID() != 1 {
		t.Fatalf("CreateSchema v1 again: %v, id %v", err, again)
	}

	ok, err := client.IsSchemaCompatible(subject, v2, "latest", srclient.Avro)
	if err != nil || !ok {
		t.Errorf("IsSchemaCompatible(v2) = %v, %v; want true", ok, err)
	}
	ok, err = client.IsSchemaCompatible(subject, bad, "latest", srclient.Avro)
	if err != nil || ok {
		t.Errorf("IsSchemaCompatible(bad) = %v, %v; want false", ok, err)
	}
	_, err = client.CreateSchema(subject, bad, srclient.Avro)
	var srErr srclient.Error
	if !errors.As(err, &srErr) || srErr.Code != 40901 {
		t.Errorf("CreateSchema(bad): %v, want HTTP 409 with error_code 40901", err)
	}

	created2, err := client.CreateSchema(subject, v2, srclient.Avro)
	if err != nil || created2.ID() != 2 {
		t.Fatalf("CreateSchema v2: %v, %v", err, created2)
	}

	latest, err := client.GetLatestSchema(subject)
	if err != nil {
		t.Fatalf("GetLatestSchema: %v", err)
	}
	if latest.ID() != 2 || latest.Version() != 2 || latest.Codec() == nil {
		t.Errorf("GetLatestSchema: id %d version %d codec %v", latest.ID(), latest.Version(), latest.Codec())
	}
	byID, err := client.GetSchema(1)
	if err != nil {
		t.Fatalf("GetSchema(1): %v", err)
	}
	if byID.Codec() == nil {
		t.Fatal("GetSchema(1): no codec")
	}
	native := map[string]any{"oldProgress": int32(10), "newProgress": int32(40)}
	bin, err := byID.Codec().BinaryFromNative(nil, native)
	if err != nil {
		t.Fatalf("encoding with the schema of id 1: %v", err)
	}
	back, _, err := byID.Codec().NativeFromBinary(bin)
	if err != nil || back.(map[string]any)["newProgress"] != int32(40) {
		t.Errorf("round trip with id 1: %v %v", back, err)
	}

	byVersion, err := client.GetSchemaByVersion(subject, 1)
	if err != nil || byVersion.ID() != 1 || byVersion.Version() != 1 {
		t.Errorf("GetSchemaByVersion(1): %v, %+v", err, byVersion)
	}
	versions, err := client.GetSchemaVersions(subject)
	if err != nil || len(versions) != 2 {
		t.Errorf("GetSchemaVersions: %v, %v", versions, err)
	}
	looked, err := client.LookupSchema(subject, v1, srclient.Avro)
	if err != nil || looked.ID() != 1 || looked.Version() != 1 {
		t.Errorf("LookupSchema(v1): %v, %+v", err, looked)
	}
	svs, err := client.GetSubjectVersionsById(1)
	if err != nil || len(svs) != 1 {
		t.Errorf("GetSubjectVersionsById(1): %v, %v", svs, err)
	}
	level, err := client.ChangeSubjectCompatibilityLevel(subject, srclient.Full)
	if err != nil || *level != srclient.Full {
		t.Errorf("ChangeSubjectCompatibilityLevel: %v, %v", level, err)
	}
	level, err = client.GetCompatibilityLevel(subject, true)
	if err != nil || *level != srclient.Full {
		t.Errorf("GetCompatibilityLevel: %v, %v", level, err)
	}
	global, err := client.GetGlobalCompatibilityLevel()
	if err != nil || *global != srclient.Backward {
		t.Errorf("GetGlobalCompatibilityLevel: %v, %v", global, err)
	}

	if err := client.DeleteSubject(subject, false); err != nil {
		t.Fatalf("DeleteSubject(soft): %v", err)
	}
	subjects, err := client.GetSubjects()
	if err != nil || len(subjects) != 0 {
		t.Errorf("GetSubjects after soft delete: %v, %v", subjects, err)
	}
	withDeleted, err := client.GetSubjectsIncludingDeleted()
	if err != nil || len(withDeleted) != 1 {
		t.Errorf("GetSubjectsIncludingDeleted: %v, %v", withDeleted, err)
	}
	if _, err := client.GetLatestSchema(subject); !errors.As(err, &srErr) || srErr.Code != codeSubjectNotFound {
		t.Errorf("GetLatestSchema after delete: %v, want 40401", err)
	}
	// srclient's permanent delete issues the soft delete first; the subject is
	// already soft-deleted, so that first call gets 40404.
	if err := client.DeleteSubject(subject, true); !errors.As(err, &srErr) || srErr.Code != codeSubjectSoftDeleted {
		t.Errorf("DeleteSubject(permanent) of a soft-deleted subject: %v, want 40404", err)
	}
	if err := client.DeleteSubject("fresh", true); !errors.As(err, &srErr) || srErr.Code != codeSubjectNotFound {
		t.Errorf("DeleteSubject(unknown): %v, want 40401", err)
	}
	if _, err := client.CreateSchema("fresh", `"string"`, srclient.Avro); err != nil {
		t.Fatal(err)
	}
	if err := client.DeleteSubject("fresh", true); err != nil {
		t.Errorf("DeleteSubject(permanent): %v", err)
	}
	if all, err := client.GetSubjectsIncludingDeleted(); err != nil || len(all) != 1 || all[0] != subject {
		t.Errorf("subjects after a permanent delete: %v, %v", all, err)
	}
	if _, err := client.GetSchema(99); !errors.As(err, &srErr) || srErr.Code != codeSchemaNotFound {
		t.Errorf("GetSchema(99): %v, want 40403", err)
	}
}
