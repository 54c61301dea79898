"""What every per-media task shares and none of them is: the data that crosses stages (`jobs`), the
per-worker models (`toolkit`), the fail-closed core (`protect`), the output checks (`checks`), where
inputs, scratch and outputs live (`places`), manifest rows (`records`), sealed index rows (`sealed_index`)."""
