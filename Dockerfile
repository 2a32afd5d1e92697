# Multi-stage build of the relay: `docker build --target mtrelay .`
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/mtrelay ./cmd/mtrelay

FROM gcr.io/distroless/static-debian12:nonroot AS mtrelay
COPY --from=build /out/mtrelay /usr/local/bin/mtrelay
EXPOSE 1935 8080
ENTRYPOINT ["/usr/local/bin/mtrelay"]
