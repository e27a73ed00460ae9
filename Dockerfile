# Dockerfile - the pgsluice image: built on Debian 12 slim in one stage, run from a second slim stage with
# only the runtime libraries, as the unprivileged user pgsluice. deploy/docker-compose.yml uses it for the
# pooler and for the one-shot `pgsluice userlist` job.
#
#   docker build -t pgsluice .
#   docker run --rm -v $PWD/deploy/pgsluice.ini:/etc/pgsluice/pgsluice.ini:ro -p 6432:6432 -p 8081:8081 pgsluice
#
# The package lists are checked against the build (tests/integration/test_deploy.py): every library the
# binary links must come from a package installed in the runtime stage.

FROM debian:bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      gcc libc6-dev meson ninja-build pkg-config \
      libuv1-dev libssl-dev libmicrohttpd-dev libpq-dev libsystemd-dev libcmocka-dev libldap-dev libpam0g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY meson.build meson_options.txt ./
COPY src ./src
COPY docs ./docs
# meson.build always configures the unit tests (they are not built or run here)
COPY tests/unit/meson.build tests/unit/layers.py ./tests/unit/
RUN meson setup build --buildtype=release --prefix=/usr \
 && ninja -C build pgsluice \
 && install -D -m 0755 build/pgsluice /out/usr/bin/pgsluice \
 && install -D -m 0644 docs/man/pgsluice.1 /out/usr/share/man/man1/pgsluice.1 \
 && install -D -m 0644 docs/man/pgsluice.ini.5 /out/usr/share/man/man5/pgsluice.ini.5

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libuv1 libssl3 libmicrohttpd12 libpq5 libsystemd0 libldap-2.5-0 libpam0g libpam-modules \
      ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system pgsluice \
 && useradd --system --gid pgsluice --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin pgsluice \
 && install -d -o root -g pgsluice -m 0755 /etc/pgsluice \
 && install -d -o pgsluice -g pgsluice -m 0700 /etc/pgsluice/auth \
 && install -d -o pgsluice -g pgsluice -m 0755 /run/pgsluice
COPY --from=build /out/ /
COPY deploy/pgsluice.ini /etc/pgsluice/pgsluice.ini
USER pgsluice
EXPOSE 6432 8081
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8081/health"]
STOPSIGNAL SIGINT
ENTRYPOINT ["pgsluice"]
CMD ["/etc/pgsluice/pgsluice.ini"]
