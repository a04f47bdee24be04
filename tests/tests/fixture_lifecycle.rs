//! A flaky device leaves nothing behind: no loop device, no mount, no directory, whether it
//! is dropped normally, during a panic, or with reads still hung. Needs root: without it
//! every test fails saying so.

use std::path::{Path, PathBuf};
use std::time::Duration;

use marginal_tests::{FlakyDevice, FlakyOptions, Schedule, read_direct};

fn device(schedule: Schedule) -> FlakyDevice {
    FlakyDevice::create(FlakyOptions {
        size_bytes: 8 << 20,
        schedule,
        ..FlakyOptions::default()
    })
    .unwrap_or_else(|e| panic!("creating the flaky device: {e:#}"))
}

/// What a device set up, to check afterwards that it is gone.
struct Traces {
    loop_name: String,
    backing: PathBuf,
    mount_dir: PathBuf,
}

impl Traces {
    fn of(dev: &FlakyDevice) -> Traces {
        Traces {
            loop_name: dev.loop_name().to_string(),
            backing: dev.backing_file().to_path_buf(),
            mount_dir: dev.mount_dir().to_path_buf(),
        }
    }

    fn assert_present(&self) {
        assert_eq!(self.loop_backing().as_deref(), Some(self.backing.as_path()));
        assert!(
            self.mounted(),
            "{} not in /proc/mounts",
            self.mount_dir.display()
        );
    }

    fn assert_gone(&self) {
        // The loop number may already serve another test's device, so compare backing files.
        assert_ne!(
            self.loop_backing().as_deref(),
            Some(self.backing.as_path()),
            "{} is still attached",
            self.loop_name
        );
        assert!(
            !self.mounted(),
            "{} is still mounted",
            self.mount_dir.display()
        );
        assert!(
            !self.mount_dir.exists(),
            "{} still exists",
            self.mount_dir.display()
        );
        let losetup = std::process::Command::new("losetup")
            .arg("--list")
            .output()
            .expect("running losetup");
        let listing = String::from_utf8_lossy(&losetup.stdout);
        assert!(
            !listing.contains(&*self.backing.to_string_lossy()),
            "losetup still lists {}:\n{listing}",
            self.backing.display()
        );
    }

    fn loop_backing(&self) -> Option<PathBuf> {
        let file = format!("/sys/block/{}/loop/backing_file", self.loop_name);
        std::fs::read_to_string(file)
            .ok()
            .map(|s| PathBuf::from(s.trim()))
    }

    fn mounted(&self) -> bool {
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
        mounts
            .lines()
            .any(|l| l.split(' ').nth(1).map(Path::new) == Some(self.mount_dir.as_path()))
    }
}

#[test]
fn drop_removes_loop_device_mount_and_directory() {
    let dev = device(Schedule::EveryNth(3));
    let traces = Traces::of(&dev);
    traces.assert_present();
    assert!(dev.loop_path().starts_with("/dev"));
    let (major, minor) = dev.major_minor();
    assert_eq!(dev.kernel_dev(), (major << 20) | minor);
    let sys_dev = std::fs::read_to_string(format!("/sys/block/{}/dev", dev.loop_name())).unwrap();
    assert_eq!(sys_dev.trim(), format!("{major}:{minor}"));
    let nomerges =
        std::fs::read_to_string(format!("/sys/block/{}/queue/nomerges", dev.loop_name())).unwrap();
    assert_eq!(nomerges.trim(), "2");
    let dio = std::fs::read_to_string(format!("/sys/block/{}/loop/dio", dev.loop_name())).unwrap();
    assert_eq!(dio.trim(), "1");
    assert_eq!(read_direct(&dev, 6), (4, 2));
    drop(dev);
    traces.assert_gone();
}

#[test]
fn close_reports_a_clean_teardown() {
    let dev = device(Schedule::Healthy);
    let traces = Traces::of(&dev);
    dev.close().expect("clean teardown");
    traces.assert_gone();
}

#[test]
fn panic_in_a_test_still_cleans_up() {
    let (tx, rx) = std::sync::mpsc::channel();
    let result = std::panic::catch_unwind(move || {
        let dev = device(Schedule::FailAll);
        tx.send(Traces::of(&dev)).unwrap();
        panic!("test failure while the device exists");
    });
    assert!(result.is_err());
    rx.recv().unwrap().assert_gone();
}

#[test]
fn drop_with_a_hung_read_fails_it_and_cleans_up() {
    let dev = device(Schedule::Hang);
    let traces = Traces::of(&dev);
    let path = dev.loop_path().to_path_buf();
    let size = dev.size_bytes();
    let reader = std::thread::spawn(move || {
        marginal_tests::read_direct_outcomes(&path, size, 1).expect("reading")
    });
    assert!(
        dev.wait_for_hung(1, Duration::from_secs(10)),
        "no read hung"
    );
    drop(dev);
    assert_eq!(reader.join().unwrap(), vec![false], "the hung read fails");
    traces.assert_gone();
}

#[test]
fn parallel_devices_are_independent() {
    let schedules = [
        Schedule::Healthy,
        Schedule::FailAll,
        Schedule::EveryNth(2),
        Schedule::Burst { after: 1, fail: 2 },
    ];
    let results: Vec<(usize, usize)> = std::thread::scope(|s| {
        let handles: Vec<_> = schedules
            .iter()
            .map(|&schedule| {
                s.spawn(move || {
                    let dev = device(schedule);
                    let result = read_direct(&dev, 10);
                    let traces = Traces::of(&dev);
                    drop(dev);
                    traces.assert_gone();
                    result
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results, vec![(10, 0), (0, 10), (5, 5), (8, 2)]);
}

#[test]
fn rejects_sizes_that_are_not_whole_blocks() {
    marginal_tests::require_root().unwrap_or_else(|e| panic!("{e:#}"));
    for size_bytes in [0, 4095, (1 << 20) + 512] {
        let err = FlakyDevice::create(FlakyOptions {
            size_bytes,
            ..FlakyOptions::default()
        })
        .err()
        .unwrap_or_else(|| panic!("size {size_bytes} accepted"));
        let msg = format!("{err:#}");
        assert!(msg.contains("multiple of 4096"), "{msg}");
    }
}
