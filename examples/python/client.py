#!/usr/bin/env python3
"""A Python client of rolecall, run against `rolecall serve` with its
built-in demo model (see README.md; run.sh does all of it).

It shows the calls an application and a control plane make:

1. Check with `explain`: an allow and the bindings that grant it, and a
   denial with the rule that failed.
2. ListVisible, walking every page with a small page_size (the page token
   pins the first page's revision).
3. Admin Apply: a delta that adds a record, sent with the bearer token; then
   a Check and a ListVisible with `consistency {at_least: <revision>}`, so the
   app reads its own write.
4. Admin ExportPieces: the model in pieces, merged back with MergeFrom, and
   compared with the one-message Export.
5. Admin Apply in pieces (`snapshot_piece`): those pieces sent back as one
   update, answered once, which leaves the model as it was.

Every answer is compared with what the demo model must give; any mismatch
is printed and the script exits 1.

The stubs are generated from proto/ with grpcio-tools (see README.md) into a
directory given by --stubs. It connects over loopback TCP: Python grpcio
sends a Unix socket's path as the HTTP/2 :authority, which the sidecar
refuses (override it with the "grpc.default_authority" channel option if you
must use the socket).
"""

import argparse
import sys
import uuid

failures = []


def expect(ok, what):
    """Records one expectation; prints it either way."""
    print(f"  {'ok  ' if ok else 'FAIL'} {what}")
    if not ok:
        failures.append(what)
    return ok


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--authz", default="127.0.0.1:50051", help="host:port of the Authz listener")
    parser.add_argument("--admin", default="127.0.0.1:50052", help="host:port of the Admin listener")
    parser.add_argument("--token-file", required=True, help="the admin bearer token file")
    parser.add_argument("--stubs", required=True, help="directory with the generated rolecall/v1/*_pb2*.py")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the server")
    args = parser.parse_args()

    sys.path.insert(0, args.stubs)
    import grpc
    from rolecall.v1 import admin_pb2, admin_pb2_grpc, authz_pb2, authz_pb2_grpc

    with open(args.token_file, encoding="ascii") as f:
        token = f.read().rstrip("\r\n")

    authz_channel = grpc.insecure_channel(args.authz)
    admin_channel = grpc.insecure_channel(args.admin)
    try:
        grpc.channel_ready_future(authz_channel).result(timeout=args.timeout)
        grpc.channel_ready_future(admin_channel).result(timeout=args.timeout)
    except grpc.FutureTimeoutError:
        print(f"rolecall is not answering on {args.authz} / {args.admin}")
        return 1
    authz = authz_pb2_grpc.AuthzStub(authz_channel)
    admin = admin_pb2_grpc.AdminStub(admin_channel)
    ws = "sunrise-care"

    def record(record_id):
        return authz_pb2.ResourceRef(type="record", id=record_id)

    # --- 1. Check, with explain -------------------------------------------
    print("Check (explain)")
    r = authz.Check(
        authz_pb2.CheckRequest(
            workspace=ws, subject="u-nurse", action="read", resource=record("r-rose-1"), explain=True
        ),
        timeout=5,
    )
    e = r.explanation
    print(f"  u-nurse read record:r-rose-1 -> allowed={r.allowed} at revision {r.revision}: {e.message}")
    expect(r.allowed, "u-nurse may read r-rose-1")
    expect(e.rule == "granted", f"rule is 'granted' (got {e.rule!r})")
    expect(
        [(b.role, b.scope, b.via_group) for b in e.granted_by] == [("record_all_viewer", "workspace", "")],
        "granted by record_all_viewer at workspace",
    )
    expect(e.reach_through == "mini:m-rose", f"reached through mini:m-rose (got {e.reach_through!r})")
    first_revision = int(r.revision)

    r = authz.Check(
        authz_pb2.CheckRequest(
            workspace=ws, subject="u-nurse", action="read", resource=record("r-oak-1"), explain=True
        ),
        timeout=5,
    )
    print(f"  u-nurse read record:r-oak-1 -> allowed={r.allowed}: {r.explanation.message}")
    expect(not r.allowed, "u-nurse may not read r-oak-1")
    expect(r.explanation.rule == "no_reach", f"rule is 'no_reach' (got {r.explanation.rule!r})")
    # Every answer names its rule as an enum, explain or not.
    plain = authz.Check(
        authz_pb2.CheckRequest(workspace=ws, subject="u-nurse", action="read", resource=record("r-oak-1")),
        timeout=5,
    )
    reason = authz_pb2.Reason.Name(plain.reason)
    expect(reason == "REASON_NO_REACH", f"reason is REASON_NO_REACH without explain (got {reason})")

    # --- 2. ListVisible, every page ---------------------------------------
    print("ListVisible (page_size 2)")
    ids, pages, token_in, revisions = [], 0, "", set()
    while True:
        page = authz.ListVisible(
            authz_pb2.ListVisibleRequest(
                workspace=ws,
                subject="u-lead",
                resource_type="record",
                action="read",
                page_size=2,
                page_token=token_in,
            ),
            timeout=5,
        )
        pages += 1
        revisions.add(page.revision)
        print(f"  page {pages}: {list(page.ids)} (revision {page.revision})")
        expect(len(page.ids) <= 2, f"page {pages} holds at most 2 ids")
        ids.extend(page.ids)
        token_in = page.next_page_token
        if not token_in:
            break
        if pages > 100:
            expect(False, "pagination ends")
            break
    expected = ["r-ivy-1", "r-oak-1", "r-oak-2", "r-rose-1", "r-rose-2", "r-rose-3"]
    expect(ids == expected, f"u-lead sees every record, ascending: {expected}")
    expect(pages == 3, f"3 pages (got {pages})")
    expect(len(revisions) == 1, "every page at one revision")

    # --- 3. Admin Apply, then read your write -----------------------------
    print("Admin Apply (delta), then Check with at_least")
    new = "r-rose-4"
    before = authz.Check(
        authz_pb2.CheckRequest(workspace=ws, subject="u-nurse", action="read", resource=record(new), explain=True),
        timeout=5,
    )
    expect(
        not before.allowed and before.explanation.rule == "unknown_resource",
        f"before the update, {new} is unknown (rule {before.explanation.rule!r})",
    )

    def apply_request():
        return admin_pb2.ApplyRequest(
            request_id=f"python-example-{uuid.uuid4()}",
            source="admin",
            delta=admin_pb2.Delta(
                workspace=ws,
                changes=[
                    admin_pb2.Change(
                        upsert_resource=admin_pb2.Resource(type="record", id=new, parent="mini:m-rose")
                    )
                ],
            ),
        )

    # Without the token: UNAUTHENTICATED.
    try:
        list(admin.Apply(iter([apply_request()]), timeout=5))
        expect(False, "Apply without a token is refused")
    except grpc.RpcError as err:
        if err.code() == grpc.StatusCode.UNIMPLEMENTED:
            print(f"  the Admin service is not served on {args.admin} (UNIMPLEMENTED): this rolecall binary has no Admin API yet")
            expect(False, "rolecall.v1.Admin/Apply is served")
            return finish()
        expect(err.code() == grpc.StatusCode.UNAUTHENTICATED, f"Apply without a token is UNAUTHENTICATED (got {err.code().name})")

    # One update on the stream; the stream ends when the request iterator
    # does, after the answer.
    req = apply_request()
    try:
        responses = list(
            admin.Apply(iter([req]), metadata=[("authorization", f"Bearer {token}")], timeout=10)
        )
    except grpc.RpcError as err:
        if err.code() == grpc.StatusCode.UNIMPLEMENTED:
            print(f"  the Admin service is not served on {args.admin} (UNIMPLEMENTED): this rolecall binary has no Admin API yet")
        expect(False, f"Apply succeeds (got {err.code().name}: {err.details()})")
        return finish()
    expect(len(responses) == 1, f"one answer per update (got {len(responses)})")
    if not responses:
        return finish()
    resp = responses[0]
    expect(resp.request_id == req.request_id, "the answer echoes the request_id")
    if resp.WhichOneof("result") != "revision":
        expect(False, f"the update is applied (rejected: {list(resp.rejected.problems)})")
        return finish()
    applied = resp.revision
    print(f"  applied {req.request_id} as revision {applied}")
    expect(int(applied) > first_revision, f"the revision moved on from {first_revision}")

    at_least = authz_pb2.Consistency(at_least=applied)
    r = authz.Check(
        authz_pb2.CheckRequest(
            workspace=ws,
            subject="u-nurse",
            action="read",
            resource=record(new),
            consistency=at_least,
            explain=True,
        ),
        timeout=5,
    )
    print(f"  u-nurse read record:{new} at_least {applied} -> allowed={r.allowed} at revision {r.revision}: {r.explanation.message}")
    expect(r.allowed, f"u-nurse may read the new {new} (read-your-writes)")
    expect(int(r.revision) >= int(applied), f"answered at revision {r.revision} >= {applied}")

    page = authz.ListVisible(
        authz_pb2.ListVisibleRequest(
            workspace=ws,
            subject="u-nurse",
            resource_type="record",
            parent="mini:m-rose",
            consistency=at_least,
        ),
        timeout=5,
    )
    print(f"  u-nurse's records on mini:m-rose at_least {applied}: {list(page.ids)}")
    expect(list(page.ids) == ["r-rose-1", "r-rose-2", "r-rose-3", new], f"the list includes {new}")

    # --- 4. Admin ExportPieces, put back together --------------------------
    print("Admin ExportPieces, merged, against Export")
    auth = [("authorization", f"Bearer {token}")]
    workspaces = []
    revisions = set()
    for piece in admin.ExportPieces(admin_pb2.ExportRequest(), metadata=auth, timeout=10):
        revisions.add(piece.revision)
        # A workspace's pieces follow one another; MergeFrom appends lists.
        if workspaces and workspaces[-1].id == piece.workspace.id:
            workspaces[-1].MergeFrom(piece.workspace)
        else:
            workspaces.append(piece.workspace)
    whole = admin.Export(admin_pb2.ExportRequest(), metadata=auth, timeout=10)
    print(f"  {len(workspaces)} workspace(s) at revision(s) {sorted(revisions)}")
    expect(revisions == {whole.revision}, f"every piece is at Export's revision {whole.revision}")
    expect(list(workspaces) == list(whole.snapshot.workspaces), "the merged pieces are Export's workspaces")
    exported = [r.id for w in workspaces if w.id == ws for r in w.resources if r.type == "record"]
    expect(new in exported, f"the export holds {new}")

    # --- 5. Admin Apply in pieces: the export sent back -------------------
    print("Admin Apply of the export's pieces (snapshot_piece), answered once")
    pieces = list(admin.ExportPieces(admin_pb2.ExportRequest(), metadata=auth, timeout=10))
    # Every piece repeats the update's request_id, source and
    # expected_revision; a last piece with no workspace ends the update.
    header = dict(request_id=str(uuid.uuid4()), source="admin", expected_revision=whole.revision)
    requests = [
        admin_pb2.ApplyRequest(**header, snapshot_piece=admin_pb2.SnapshotPiece(workspace=p.workspace))
        for p in pieces
    ]
    requests.append(admin_pb2.ApplyRequest(**header, snapshot_piece=admin_pb2.SnapshotPiece(last=True)))
    responses = list(admin.Apply(iter(requests), metadata=auth, timeout=10))
    expect(len(responses) == 1, f"one answer for {len(requests)} pieces (got {len(responses)})")
    if responses:
        resp = responses[0]
        expect(resp.request_id == header["request_id"], "the answer echoes the request_id")
        expect(resp.WhichOneof("result") == "revision", f"the pieces are applied (got {list(resp.rejected.problems)})")
        print(f"  {len(requests)} pieces applied as revision {resp.revision}")
        expect(resp.revision == str(int(whole.revision) + 1), "one update, one revision")
    again = admin.Export(admin_pb2.ExportRequest(), metadata=auth, timeout=10)
    expect(again.snapshot == whole.snapshot, "the model is the one exported")

    return finish()


def finish():
    if failures:
        print(f"{len(failures)} expectation(s) failed:")
        for f in failures:
            print(f"  - {f}")
        return 1
    print("all expectations met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
