#!/usr/bin/env bash
# Build stand-ins for the official base images from Debian 12 packages with mmdebstrap, for
# machines that cannot pull from Docker Hub or gcr.io. Each is built once and reused (FORCE=1
# rebuilds). They carry the same Debian packages as the official images they stand in for:
#   STANDIN_FULL        python:3.11 (buildpack-deps: Python, build-essential, git, curl, -dev libs)
#   STANDIN_SLIM        python:3.11-slim and debian:12-slim (minbase + python3 + venv)
#   STANDIN_DISTROLESS  gcr.io/distroless/python3-debian12:nonroot (no shell, no package manager)
set -euo pipefail

DOCKER=${DOCKER:-docker}
SUITE=${SUITE:-bookworm}
STANDIN_FULL=${STANDIN_FULL:-standin/python:3.11}
STANDIN_SLIM=${STANDIN_SLIM:-standin/python:3.11-slim}
STANDIN_DISTROLESS=${STANDIN_DISTROLESS:-standin/distroless-python3-debian12:nonroot}
PATH_ENV="PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# What gcr.io/distroless/python3-debian12 is made of: base (libc, tzdata, CA certificates, SSL),
# cc (libgcc, libgomp, libstdc++) and the python3 layer's packages (GoogleContainerTools/distroless
# python3/python.bzl); mmdebstrap adds their dependencies.
DISTROLESS_PACKAGES=base-files,netbase,tzdata,ca-certificates,libc6,libssl3,libgcc-s1,libgomp1,libstdc++6,\
libbz2-1.0,libdb5.3,libexpat1,liblzma5,libsqlite3-0,libuuid1,libncursesw6,libtinfo6,python3-distutils,\
zlib1g,libcom-err2,libcrypt1,libgssapi-krb5-2,libk5crypto3,libkeyutils1,libkrb5-3,libkrb5support0,\
libnsl2,libreadline8,libtirpc3,libffi8,libpython3.11-minimal,libpython3.11-stdlib,python3.11-minimal

# buildpack-deps:bookworm's packages plus Debian's Python (python:3.11 builds its own from source).
FULL_PACKAGES=python3,python3-venv,python3-pip,python3-dev,build-essential,git,curl,wget,ca-certificates,\
gnupg,dirmngr,netbase,procps,openssh-client,unzip,xz-utils,bzip2,file,pkg-config,autoconf,automake,\
libtool,make,patch,libssl-dev,libffi-dev,zlib1g-dev,libbz2-dev,liblzma-dev,libsqlite3-dev,\
libreadline-dev,libncursesw5-dev,libgdbm-dev,libdb-dev,libxml2-dev,libxslt1-dev,libyaml-dev,\
libjpeg-dev,libpng-dev,libcurl4-openssl-dev,uuid-dev,tk-dev,libkrb5-dev,libpq-dev,default-libmysqlclient-dev

log() { echo "[stand-in bases] $*" >&2; }

exists() { [ -z "${FORCE:-}" ] && $DOCKER image inspect "$1" >/dev/null 2>&1; }

# The distroless filesystem has no shell to run maintainer scripts, so do on the host what they
# and distroless's build do: users, CA bundle, ld.so.cache, python aliases, /tmp; keep only the
# copyright files of /usr/share/doc, as distroless does. (An extract-hook: mmdebstrap runs no
# customize-hook for the extract variant.)
DISTROLESS_HOOK='set -e; r="$1";
  printf "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n" > "$r/etc/passwd";
  printf "root:x:0:\nnobody:x:65534:\ntty:x:5:\nstaff:x:50:\nnonroot:x:65532:\n" > "$r/etc/group";
  mkdir -p "$r/home/nonroot" "$r/root" "$r/tmp" "$r/etc/ssl/certs"; chown 65532:65532 "$r/home/nonroot"; chmod 1777 "$r/tmp"; chmod 700 "$r/root";
  cat "$r"/usr/share/ca-certificates/mozilla/*.crt > "$r/etc/ssl/certs/ca-certificates.crt";
  ln -sf python3.11 "$r/usr/bin/python3"; ln -sf python3.11 "$r/usr/bin/python";
  ldconfig -r "$r";
  find "$r/usr/share/doc" -type f ! -name copyright -delete;
  rm -rf "$r/usr/share/man" "$r/usr/share/info" "$r/var/cache/apt" "$r/var/lib/apt/lists"'

build_distroless() {
  exists "$STANDIN_DISTROLESS" && { log "reusing $STANDIN_DISTROLESS"; return; }
  log "building $STANDIN_DISTROLESS"
  mmdebstrap --quiet --variant=extract --include="$DISTROLESS_PACKAGES" \
    --extract-hook="$DISTROLESS_HOOK" "$SUITE" - |
    $DOCKER import \
      --change "ENV $PATH_ENV" --change "ENV LANG=C.UTF-8" \
      --change "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt" \
      --change "USER 65532" --change "WORKDIR /home/nonroot" \
      --change 'ENTRYPOINT ["/usr/bin/python3.11"]' - "$STANDIN_DISTROLESS" >/dev/null
}

# debian:12-slim's own dpkg filters (debuerreotype's slimify): no man pages, docs or locales.
SLIM_DPKG_OPTS=(--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/info/*')
# merged /usr as Debian's images have it, set up by mmdebstrap's hook rather than the usrmerge
# package (which would drag perl into the image).
MERGED_USR=(--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr)

build_slim() {
  exists "$STANDIN_SLIM" && { log "reusing $STANDIN_SLIM"; return; }
  log "building $STANDIN_SLIM"
  mmdebstrap --quiet --variant=minbase "${MERGED_USR[@]}" "${SLIM_DPKG_OPTS[@]}" \
    --include=python3,python3-venv,ca-certificates "$SUITE" - |
    $DOCKER import --change "ENV $PATH_ENV" --change "ENV LANG=C.UTF-8" \
      --change 'CMD ["python3"]' - "$STANDIN_SLIM" >/dev/null
}

build_full() {
  exists "$STANDIN_FULL" && { log "reusing $STANDIN_FULL"; return; }
  log "building $STANDIN_FULL"
  mmdebstrap --quiet --variant=minbase "${MERGED_USR[@]}" --include="$FULL_PACKAGES" "$SUITE" - |
    $DOCKER import --change "ENV $PATH_ENV" --change "ENV LANG=C.UTF-8" \
      --change 'CMD ["python3"]' - "$STANDIN_FULL" >/dev/null
}

for base in "${@:-distroless slim full}"; do
  for b in $base; do "build_$b"; done
done
$DOCKER image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep '^standin/' >&2 || true
