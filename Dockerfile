# Builds the arq binary for docker-compose.yml.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /arq ./cmd/arq

FROM gcr.io/distroless/static-debian12
COPY --from=build /arq /arq
EXPOSE 8080
ENTRYPOINT ["/arq"]
CMD ["serve"]
