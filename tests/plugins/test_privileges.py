"""Privileges (plugins/privileges.py): rewards held by grade."""





from scenario_builders import make, run


def test_privileges_are_held_by_grade(tmp_path):
    sc = make(behaviours=[{"name": "volunteering", "rate": 0.05}, {"name": "littering", "rate": 0.05}],
              policy={"rules": [{"behaviour": "volunteering", "sensor": "court", "points": 20},
                                {"behaviour": "littering", "sensor": "court", "points": -60}],
                      "grades": [{"name": "A", "min": 1050}, {"name": "B", "min": 950, "max": 1049}, {"name": "C", "max": 949}],
                      "privileges": [{"name": "bike", "grades": ["A", "B"]}, {"name": "heating", "grades": ["A"]}]})
    m = run(sc, tmp_path).metrics
    assert (m.privileged_bike == m.grade_A + m.grade_B).all()
    assert (m.privileged_heating == m.grade_A).all()
    assert m.privileged_heating.max() > 0 and (m.privileged_bike < m.population).any()
