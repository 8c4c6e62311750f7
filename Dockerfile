# Pyrite's programs in one small image: pyrite (the operator CLI), ingest, upcaster and
# projector, statically linked, on a distroless base, running as a non-root user.
#
#   docker build -t pyrite .
#   docker run --rm pyrite ingest -h
#
# compose/docker-compose.yml builds it once and runs each program from it.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# CGO off: the SQLite driver is pure Go, so the binaries need no C library.
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ \
        ./cmd/pyrite ./cmd/ingest ./cmd/upcaster ./cmd/projector

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
USER nonroot:nonroot
WORKDIR /home/nonroot
# ingest, projector, upcaster (DESIGN.md section 4)
EXPOSE 8080 8082 8083
CMD ["pyrite", "help"]
