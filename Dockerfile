# dfpipe in a container (docker-compose.yml runs its Ballista scheduler and executors from it).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked && cp target/release/dfpipe /usr/local/bin/dfpipe

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/dfpipe /usr/local/bin/dfpipe
ENTRYPOINT ["dfpipe"]
