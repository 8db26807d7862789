from tests.e2e.people import synthetic_admission


def test_admit_and_read(api):
    r = api.post("/participants", synthetic_admission(1))
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    got = api.get(f"/participants/{pid}")
    assert got.status_code == 200, got.text
    assert got.json()["stage"] == "orientation"
    assert got.headers["etag"] == f'"{r.json()["version"]}"'
